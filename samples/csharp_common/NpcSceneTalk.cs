// npc-sdk scene talk shared by the Unity and Godot samples (see NpcServiceClient.cs for the syntax rules): several
// NPCs in one scene (docs/scenes.md), who talk among themselves and to the player. Nothing engine-specific is in it;
// each engine's sample shows the lines and captures the screen.

using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Grpc.Core;
using Npc.V1;

namespace NpcSdk
{
    /// <summary>
    /// A scene of 2-6 NPCs. <see cref="OpenAsync"/> opens a session per persona and the scene; <see cref="TalkAsync"/>
    /// lets them talk among themselves (Converse); <see cref="SayAsync"/> sends the player's line (SceneChat), which
    /// cuts a talk short and is answered by the NPC it names (else the most relevant one). The callbacks get each
    /// SceneEvent (SessionId and Speaker say which NPC; Event is its action, delta or done, as Chat streams them) with
    /// that NPC's line so far.
    /// </summary>
    public sealed class NpcSceneTalk
    {
        /// <summary>Tokens a line may have at most (0: each persona's default). Read at each call.</summary>
        public int MaxTokens = 40;

        /// <summary>Seconds one call may take in all: a talk of many lines, or an answer (0: no limit).</summary>
        public float CallTimeoutSeconds = 120f;

        readonly NpcServiceClient client;
        readonly bool continueOnCapturedContext;
        Scene scene;

        /// <param name="client">the calls go through it</param>
        /// <param name="continueOnCapturedContext">true: the callbacks run on the caller's SynchronizationContext
        /// (Unity's and Godot's main thread); false: on thread-pool threads</param>
        public NpcSceneTalk(NpcServiceClient client, bool continueOnCapturedContext)
        {
            if (client == null) throw new ArgumentNullException("client");
            this.client = client;
            this.continueOnCapturedContext = continueOnCapturedContext;
        }

        /// <summary>The scene once open: SceneId, and Members (SessionId, Name) in the order of the personas.</summary>
        public Scene Scene
        {
            get { return scene; }
        }

        /// <summary>A new session for each NPC (2-6), then the scene of them all.</summary>
        public async Task<Scene> OpenAsync(IEnumerable<CreateSessionRequest> npcs)
        {
            var create = new CreateSceneRequest();
            foreach (var npc in npcs)
            {
                Session session = await client.CreateSessionAsync(npc, Deadline(30f), CancellationToken.None)
                    .ResponseAsync.ConfigureAwait(continueOnCapturedContext);
                create.SessionIds.Add(session.SessionId);
            }
            scene = await client.CreateSceneAsync(create, Deadline(30f), CancellationToken.None).ResponseAsync
                .ConfigureAwait(continueOnCapturedContext);
            return scene;
        }

        /// <summary>
        /// The NPCs talk among themselves for <paramref name="turns"/> lines (1-16), after <paramref name="topic"/>
        /// (heard by all as the narrator's line; may be empty), seeing <paramref name="screenshot"/> (may be null).
        /// Returns true when the talk was cut short: by <see cref="SayAsync"/>, or by cancelling the token. The line
        /// being said then is not stored; the lines already said stay.
        /// </summary>
        public async Task<bool> TalkAsync(
            int turns, string topic, Npc.V1.Image screenshot, Action<SceneEvent, string> onEvent,
            CancellationToken cancellationToken)
        {
            var request = new ConverseRequest { SceneId = OpenedSceneId(), Turns = turns, Topic = topic ?? "" };
            if (screenshot != null) request.Screenshot = screenshot;
            if (MaxTokens > 0) request.Generation = new GenerationConfig { MaxTokens = MaxTokens };
            try
            {
                return await client.StreamSceneAsync(
                    client.Converse(request, Deadline(CallTimeoutSeconds), cancellationToken), onEvent,
                    continueOnCapturedContext, cancellationToken).ConfigureAwait(continueOnCapturedContext);
            }
            catch (RpcException e)
                when (e.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested)
            {
                return true;  // the server ended the talk as a SceneChat would
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return true;  // the same, seen by a transport that throws this instead
            }
        }

        /// <summary>
        /// The player's line: it interrupts a talk in flight, and the NPC named in it answers (else the most relevant
        /// one). Returns the answer's done event (Speaker, SessionId, Event.Done), or null if nobody answered.
        /// </summary>
        public async Task<SceneEvent> SayAsync(
            string line, Npc.V1.Image screenshot, Action<SceneEvent, string> onEvent,
            CancellationToken cancellationToken)
        {
            var request = new SceneChatRequest { SceneId = OpenedSceneId(), Text = line ?? "" };
            if (screenshot != null) request.Screenshot = screenshot;
            if (MaxTokens > 0) request.Generation = new GenerationConfig { MaxTokens = MaxTokens };
            SceneEvent answer = null;
            await client.StreamSceneAsync(
                client.SceneChat(request, Deadline(CallTimeoutSeconds), cancellationToken),
                (ev, soFar) =>
                {
                    if (ev.Event != null && ev.Event.EventCase == ChatEvent.EventOneofCase.Done) answer = ev;
                    if (onEvent != null) onEvent(ev, soFar);
                },
                continueOnCapturedContext, cancellationToken).ConfigureAwait(continueOnCapturedContext);
            return answer;
        }

        /// <summary>Ends the scene on the server (a talk in flight is cut short); its sessions stay.</summary>
        public async Task CloseAsync()
        {
            if (scene == null) return;
            var delete = new DeleteSceneRequest { SceneId = scene.SceneId };
            scene = null;
            await client.DeleteSceneAsync(delete, Deadline(30f), CancellationToken.None).ResponseAsync
                .ConfigureAwait(continueOnCapturedContext);
        }

        string OpenedSceneId()
        {
            if (scene == null) throw new InvalidOperationException("npc-sdk: the scene is not open (OpenAsync)");
            return scene.SceneId;
        }

        static DateTime? Deadline(float seconds)
        {
            if (seconds <= 0f) return null;
            return DateTime.UtcNow.AddSeconds(seconds);
        }
    }
}
