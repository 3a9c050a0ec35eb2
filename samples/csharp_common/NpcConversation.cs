// npc-sdk conversation shared by the Unity and Godot samples (see NpcServiceClient.cs for the syntax rules): one
// NPC's session and its replies, with nothing engine-specific in it. Each engine's NpcDialogue captures the screen,
// collects what is in view, shows the text and plays the emotion; the session, cancel, retry and forget logic is here.

using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Grpc.Core;
using Npc.V1;

namespace NpcSdk
{
    /// <summary>
    /// One NPC's conversation: opens (or resumes) its session on first use, sends the player's line with an optional
    /// screenshot and streams the reply, one reply at a time (a new line cancels the one still streaming), asks again
    /// when the server cannot be reached, cancels, and forgets (deletes) the session. <see cref="Cancel"/> may be
    /// called on the main thread while a reply is read on another.
    /// </summary>
    public sealed class NpcConversation
    {
        /// <summary>
        /// Client-chosen session id ([A-Za-z0-9_.-], up to 64, e.g. save slot + NPC): the same id resumes the same
        /// conversation. Empty: the server picks one. Read whenever the session is opened (first use, after a forget).
        /// </summary>
        public string SessionId = "";

        /// <summary>Tokens a reply may have at most (0: the server's default). Read at each line, as are the two
        /// below.</summary>
        public int MaxTokens = 80;

        /// <summary>Seconds a reply may take in all, retries included (0: no limit).</summary>
        public float ReplyTimeoutSeconds = 60f;

        /// <summary>
        /// Calls per line, the first included. A call that fails with Unavailable (the server restarting, the network
        /// dropping) is made again with the same turn id: the server replays a turn it stored instead of running it
        /// twice, and the delta callback never gets the same text twice. 1: no retry.
        /// </summary>
        public int Attempts = 4;

        readonly NpcServiceClient client;
        readonly Func<CreateSessionRequest> create;
        readonly bool continueOnCapturedContext;
        readonly object gate = new object();  // guards the three fields below
        Task<Session> session;
        CancellationTokenSource reply;
        int replyNumber;

        /// <param name="client">the calls go through it (one per server address is enough for every NPC)</param>
        /// <param name="create">the persona, asked for whenever the session is opened (on the calling thread)</param>
        /// <param name="continueOnCapturedContext">true: the callbacks run on the caller's SynchronizationContext
        /// (Unity's main thread); false: on thread-pool threads (Godot marshals them with CallDeferred)</param>
        public NpcConversation(
            NpcServiceClient client, Func<CreateSessionRequest> create, bool continueOnCapturedContext)
        {
            if (client == null) throw new ArgumentNullException("client");
            if (create == null) throw new ArgumentNullException("create");
            this.client = client;
            this.create = create;
            this.continueOnCapturedContext = continueOnCapturedContext;
        }

        /// <summary>Goes up at every <see cref="Cancel"/>: a callback that carries an older number is a cancelled
        /// reply's.</summary>
        public int ReplyNumber
        {
            get { lock (gate) return replyNumber; }
        }

        /// <summary>
        /// The id of the session once it is open (the server's pick when <see cref="SessionId"/> was empty), else "".
        /// A conversation made for a restarted server (NpcServerProcess: a new port) resumes the session by it.
        /// </summary>
        public string OpenedSessionId
        {
            get
            {
                lock (gate)
                {
                    return session != null && session.Status == TaskStatus.RanToCompletion
                        ? session.Result.SessionId : "";
                }
            }
        }

        /// <summary>The session, opened (or resumed by id) once; opened again after a failure or a forget.</summary>
        public Task<Session> OpenAsync()
        {
            lock (gate)
            {
                if (session == null || session.IsFaulted || session.IsCanceled)
                {
                    session = client.OpenSessionAsync(SessionId, create(), Deadline(30f), CancellationToken.None);
                }
                return session;
            }
        }

        /// <summary>What the NPC says first: the last reply of a resumed session, else the persona's greeting.
        /// </summary>
        public async Task<string> OpeningLineAsync()
        {
            Session opened = await OpenAsync().ConfigureAwait(continueOnCapturedContext);
            return opened.Turns.Count > 0 ? opened.Turns[opened.Turns.Count - 1].Reply : opened.Persona.Greeting;
        }

        /// <summary>
        /// Sends the player's line and streams the reply: <paramref name="onAction"/> gets the declared action the
        /// line asked for (before the text), <paramref name="onDelta"/> gets (delta, reply so far). The screenshot,
        /// scene entities (at most 32) and game facts (at most 16) may be null. Returns the done event, or null when
        /// the reply was cancelled (<see cref="Cancel"/>, or a newer line): the server then stored nothing. Other
        /// failures throw RpcException; after NotFound (the session was deleted on the server) the next line opens
        /// a new session.
        /// </summary>
        public async Task<Done> SendAsync(
            string line, Npc.V1.Image screenshot, IEnumerable<SceneEntity> scene, IDictionary<string, string> state,
            Action<ActionCall> onAction, Action<string, string> onDelta)
        {
            // Everything the caller passed is read here, before the first await, on the caller's thread.
            var request = new ChatRequest { Text = line ?? "" };
            if (screenshot != null) request.Screenshot = screenshot;
            if (scene != null) request.Scene.AddRange(scene);
            if (state != null) request.State.Add(state);
            if (MaxTokens > 0) request.Generation = new GenerationConfig { MaxTokens = MaxTokens };
            int attempts = Math.Max(1, Attempts);
            DateTime? deadline = Deadline(ReplyTimeoutSeconds);
            Task<Session> opening = OpenAsync();
            CancellationTokenSource cancellation = BeginReply();
            try
            {
                Session opened = await opening.ConfigureAwait(continueOnCapturedContext);
                request.SessionId = opened.SessionId;
                return await client.StreamReplyWithRetryAsync(
                    request, onAction, onDelta, continueOnCapturedContext, attempts, deadline, cancellation.Token)
                    .ConfigureAwait(continueOnCapturedContext);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled)
            {
                return null;  // the server stopped decoding within a step
            }
            catch (OperationCanceledException)
            {
                return null;  // cancelled between two attempts
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
            {
                lock (gate)
                {
                    if (session == opening) session = null;
                }
                throw;
            }
            finally
            {
                EndReply(cancellation);
            }
        }

        /// <summary>Cancels the reply being streamed: the server stops within one decode step and stores nothing.
        /// </summary>
        public void Cancel()
        {
            lock (gate)
            {
                replyNumber++;
                if (reply != null)
                {
                    reply.Cancel();
                    reply = null;
                }
            }
        }

        /// <summary>Cancels any reply and deletes the session on the server: the next line starts a new
        /// conversation.</summary>
        public async Task ForgetAsync()
        {
            Cancel();
            Task<Session> current;
            lock (gate)
            {
                current = session;
                session = null;
            }
            if (current == null) return;
            Session opened;
            try
            {
                opened = await current.ConfigureAwait(continueOnCapturedContext);
            }
            catch (RpcException)
            {
                return;  // it never opened: nothing to delete
            }
            var delete = new DeleteSessionRequest { SessionId = opened.SessionId };
            for (int attempt = 0; ; attempt++)
            {
                try
                {
                    await client.DeleteSessionAsync(delete, Deadline(10f), CancellationToken.None).ResponseAsync
                        .ConfigureAwait(continueOnCapturedContext);
                    return;
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.FailedPrecondition && attempt < 5)
                {
                    // The cancelled turn is still winding down on the server (it stops within one decode step).
                    await Task.Delay(200).ConfigureAwait(continueOnCapturedContext);
                }
            }
        }

        // One reply at a time: a new one cancels the one before it.
        CancellationTokenSource BeginReply()
        {
            var cancellation = new CancellationTokenSource();
            lock (gate)
            {
                if (reply != null) reply.Cancel();
                reply = cancellation;
            }
            return cancellation;
        }

        void EndReply(CancellationTokenSource cancellation)
        {
            lock (gate)
            {
                if (reply == cancellation) reply = null;
            }
            cancellation.Dispose();  // Cancel() no longer reaches it: it left `reply` under the lock
        }

        static DateTime? Deadline(float seconds)
        {
            if (seconds <= 0f) return null;
            return DateTime.UtcNow.AddSeconds(seconds);
        }
    }
}
