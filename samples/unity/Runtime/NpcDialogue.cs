// npc-sdk Unity sample: an NPC that talks through npc.v1.NpcService, sees the screen and streams its reply.
// Needs scripts/gen_csharp.sh to have written Runtime/Generated/ (Npc.cs + the shared client), and the NuGet and UPM
// packages listed in this package's README.md. Syntax kept to what mono's mcs parses (see README: C# features).

using System;
using System.Collections;
using System.Collections.Generic;
using System.Threading.Tasks;
using Cysharp.Net.Http;
using Grpc.Core;
using Grpc.Net.Client;
using Npc.V1;
using TMPro;
using UnityEngine;
using UnityEngine.Events;

namespace NpcSdk
{
    /// <summary>One word of the persona's role-word constraint: a logit bonus in [-10, 10].</summary>
    [Serializable]
    public struct RoleWord
    {
        public string word;
        public float bonus;
    }

    [Serializable]
    public sealed class ActionRequestedEvent : UnityEvent<string>
    {
    }

    [Serializable]
    public sealed class ReplyEvent : UnityEvent<string>
    {
    }

    /// <summary>
    /// Put it on an NPC with a trigger collider. The player (tag <see cref="playerTag"/>) walking in opens the
    /// session and shows the greeting; <see cref="Say"/> (e.g. from a TMP_InputField's On Submit) sends a line with
    /// a screenshot and streams the reply into <see cref="replyText"/>; walking out, <see cref="StopTalking"/> or
    /// disabling the component cancels a reply still streaming (the server then stores nothing for that turn).
    /// </summary>
    [AddComponentMenu("npc-sdk/NPC Dialogue")]
    public sealed class NpcDialogue : MonoBehaviour
    {
        [Header("Server")]
        [Tooltip("npc-sdk serve address. http:// is HTTP/2 without TLS (the server's default); https:// needs the " +
                 "server's --tls-cert/--tls-key.")]
        public string serverAddress = "http://127.0.0.1:50051";

        [Tooltip("The server's --api-key, sent as 'authorization: Bearer KEY' (empty: none). Anything in a shipped " +
                 "build can be read out of it: use keys for studio-internal servers, not as a secret from players.")]
        public string apiKey = "";

        [Tooltip("A launcher that starts the server with the game (NpcServerLauncher). When set, its address and " +
                 "key are used instead of the two fields above, and after a restart (a new port) the conversation " +
                 "carries on with the same session.")]
        public NpcServerLauncher server;

        [Header("Persona")]
        [Tooltip("A persona the server loaded with --personas DIR (the file name, e.g. brakka). When set, the " +
                 "inline fields below are not used.")]
        public string personaId = "";

        public string npcName = "Brakka";
        [TextArea(2, 6)] public string description = "A gruff dwarven blacksmith who runs the forge in Emberfall.";
        [TextArea(1, 4)] public string personality = "";
        [TextArea(1, 4)] public string scenario = "";
        [TextArea(1, 4)] public string greeting = "Hmph. Another traveller. Mind the anvil, it bites.";
        [TextArea(1, 4)] public string style = "";
        public List<RoleWord> roleWords = new List<RoleWord>();

        [Tooltip("Client-chosen session id ([A-Za-z0-9_.-], up to 64): the same id resumes the same conversation " +
                 "(e.g. save slot + NPC). Empty: the server picks one the first time this component talks.")]
        public string sessionId = "";

        [Header("Reply")]
        public TMP_Text replyText;

        [Tooltip("Also called with the reply so far at every delta (for a UI that is not TextMeshPro).")]
        public ReplyEvent onReply = new ReplyEvent();

        [Tooltip("0: the server's default")] public int maxTokens = 80;
        [Tooltip("Seconds a reply may take in all, retries included (0: no limit).")]
        public float replyTimeoutSeconds = 60f;

        [Tooltip("Calls per line, the first included: a line the server could not be reached for (restarting, " +
                 "network gone) is sent again with the same turn id, and a reply it stored is replayed, not rerun.")]
        public int attempts = 4;

        [Header("Screenshot")]
        public bool sendScreenshot = true;

        [Tooltip("ScreenCapture copies the back buffer as it is in memory: on Direct3D, Metal and Vulkan " +
                 "(SystemInfo.graphicsUVStartsAtTop) that is upside down to Unity's texture convention, so it is " +
                 "flipped there during the downscale. Untick if the NPC sees your scenes upside down.")]
        public bool flipCaptureWhereUvStartsAtTop = true;

        [Header("Scene")]
        [Tooltip("Tell the NPC what the game knows is in view: every visible NpcTag (Capture/NpcTag.cs) not on this " +
                 "NPC, with its screen position and distance, goes out as ChatRequest.scene (the nearest 32).")]
        public bool sendVisibleTags = true;

        [Tooltip("The camera that decides what is in view (empty: Camera.main).")]
        public Camera sceneCamera;

        [Tooltip("NpcTags farther than this from the camera are not sent (metres; 0: no limit).")]
        public float sceneMaxDistance = 40f;

        [Tooltip("Log what the NPC saw in the screenshot or was told (Done.seen) after each reply.")]
        public bool logSeen = true;

        [Header("Trigger")]
        public string playerTag = "Player";

        /// <summary>
        /// After each reply, on the main thread: what the NPC saw in the screenshot or was told by the game, most
        /// certain first (SeenTag: Tag, Score 0..1, Source "screenshot", "game" or "both").
        /// </summary>
        public event Action<IList<SeenTag>> Seen;

        [Header("Actions and emotions")]
        [Tooltip("Called when the player's line asks for one of the persona's declared actions (its name), " +
                 "before the reply's text: open the shop UI, start the ferry, play the animation.")]
        public ActionRequestedEvent onAction = new ActionRequestedEvent();
        /// <summary>The same, with the typed arguments (Args: name -> value as text) and the confidence.</summary>
        public event Action<ActionCall> ActionRequested;
        [Tooltip("Set trigger \"<prefix><emotion>\" (Emotion_joy, Emotion_anger, ...) after each reply.")]
        public Animator animator;
        public string emotionTriggerPrefix = "Emotion_";
        [Tooltip("Below this intensity the emotion is treated as neutral.")]
        [Range(0f, 1f)] public float minEmotionIntensity = 0.3f;
        public event Action<Emotion> EmotionChanged;
        /// <summary>Game facts sent with every line (at most 16): GameState["player_health"] = "low".</summary>
        public readonly Dictionary<string, string> GameState = new Dictionary<string, string>();

        // One HTTP/2 connection per server address, shared by every NPC: each reply is a stream on it.
        static readonly Dictionary<string, GrpcChannel> Channels = new Dictionary<string, GrpcChannel>();

        NpcConversation conversation;
        int conversationGeneration;  // the launcher's generation the conversation's client was made for
        string carriedSessionId = "";  // the server-picked session id, kept across a restart of the launcher's server
        Texture2D readback;

        // The session, its replies, cancel, retry and forget (samples/csharp_common/NpcConversation.cs).
        NpcConversation Conversation
        {
            get
            {
                int generation = server != null ? server.Generation : 0;
                if (conversation == null || generation != conversationGeneration)
                {
                    string address = server != null ? server.Address : serverAddress;
                    if (string.IsNullOrEmpty(address))
                    {
                        throw new InvalidOperationException("npc-sdk: the server is not running yet (" + name + ")");
                    }
                    if (conversation != null)
                    {
                        // The launcher restarted the server on a new port: a client for it, the same session.
                        if (!string.IsNullOrEmpty(conversation.OpenedSessionId))
                        {
                            carriedSessionId = conversation.OpenedSessionId;
                        }
                        conversation.Cancel();
                    }
                    var client = new NpcServiceClient(ChannelFor(address), server != null ? server.ApiKey : apiKey);
                    // true: every read resumes on the main thread (Unity's SynchronizationContext, as Say runs
                    // there), so OnAction and OnDelta may touch the scene directly.
                    conversation = new NpcConversation(client, CreateRequest, true);
                    conversationGeneration = generation;
                }
                conversation.SessionId = string.IsNullOrEmpty(sessionId) ? carriedSessionId : sessionId;
                conversation.MaxTokens = maxTokens;
                conversation.ReplyTimeoutSeconds = replyTimeoutSeconds;
                conversation.Attempts = attempts;
                return conversation;
            }
        }

        /// <summary>The HTTP/2 channel to a server address, made once and shared by every NPC and scene.</summary>
        public static GrpcChannel ChannelFor(string address)
        {
            GrpcChannel channel;
            if (!Channels.TryGetValue(address, out channel))
            {
                // Unity's own HttpClient handler has no HTTP/2, which gRPC needs; YetAnotherHttpHandler (Cysharp)
                // brings it. Http2Only: speak HTTP/2 from the first byte, which an http:// (h2c) server requires.
                var handler = new YetAnotherHttpHandler { Http2Only = true };
                channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions
                {
                    HttpHandler = handler,
                    DisposeHttpClient = true,
                    // GetSession returns the whole history; allow what the server allows (--max-message-mb 64).
                    MaxReceiveMessageSize = 64 * 1024 * 1024,
                });
                Channels[address] = channel;
            }
            return channel;
        }

        [RuntimeInitializeOnLoadMethod(RuntimeInitializeLoadType.SubsystemRegistration)]
        static void CloseChannelsOnQuit()
        {
            // Also runs before each Play in the editor, so channels never outlive a play session even when
            // "Enter Play Mode Options" keeps static fields.
            DisposeChannels();
            Application.quitting -= DisposeChannels;
            Application.quitting += DisposeChannels;
        }

        static void DisposeChannels()
        {
            foreach (var channel in Channels.Values) channel.Dispose();
            Channels.Clear();
        }

        // ---- talking ----

        /// <summary>Opens (or resumes) the session and shows the greeting, or the last reply of a resumed one.</summary>
        public void StartTalking()
        {
            var ignored = GreetAsync();
        }

        /// <summary>The player's line: captures the screen at the end of this frame, then streams the reply.</summary>
        public void Say(string line)
        {
            SayWithScene(line, null);
        }

        /// <summary>
        /// <see cref="Say"/> with scene entities of the game's own (NpcScene.Entity("ferryman", "Old Tom the
        /// ferryman", x, y, metres)), sent with the visible NpcTags.
        /// </summary>
        public void SayWithScene(string line, IEnumerable<SceneEntity> scene)
        {
            if (string.IsNullOrEmpty(line) || !isActiveAndEnabled) return;
            StopTalking();
            StartCoroutine(CaptureThenChat(line, scene));
        }

        /// <summary>Cancels the reply being streamed (the turn is then not stored) and any pending capture.</summary>
        public void StopTalking()
        {
            StopAllCoroutines();
            if (conversation != null) conversation.Cancel();
        }

        /// <summary>Deletes this NPC's session on the server: the next line starts a new conversation.</summary>
        public Task ForgetConversationAsync()
        {
            StopAllCoroutines();
            carriedSessionId = "";
            return Conversation.ForgetAsync();
        }

        void OnTriggerEnter(Collider other)
        {
            if (other.CompareTag(playerTag)) StartTalking();
        }

        void OnTriggerExit(Collider other)
        {
            if (other.CompareTag(playerTag)) StopTalking();
        }

        void OnTriggerEnter2D(Collider2D other)
        {
            if (other.CompareTag(playerTag)) StartTalking();
        }

        void OnTriggerExit2D(Collider2D other)
        {
            if (other.CompareTag(playerTag)) StopTalking();
        }

        void OnDisable()
        {
            StopTalking();
        }

        void OnDestroy()
        {
            if (readback != null) Destroy(readback);
        }

        CreateSessionRequest CreateRequest()
        {
            var request = new CreateSessionRequest();
            if (!string.IsNullOrEmpty(personaId))
            {
                request.PersonaId = personaId;
                return request;
            }
            var persona = new Persona
            {
                Name = npcName ?? "",
                Description = description ?? "",
                Personality = personality ?? "",
                Scenario = scenario ?? "",
                Greeting = greeting ?? "",
                Style = style ?? "",
            };
            foreach (var roleWord in roleWords)
            {
                if (!string.IsNullOrEmpty(roleWord.word)) persona.RoleWords[roleWord.word] = roleWord.bonus;
            }
            request.Persona = persona;
            return request;
        }

        async Task GreetAsync()
        {
            try
            {
                string text = await Conversation.OpeningLineAsync();
                if (!string.IsNullOrEmpty(text)) ShowReply(text);
            }
            catch (Exception e)
            {
                Debug.LogWarning("npc-sdk: could not open the session for " + npcName + ": " + e.Message, this);
            }
        }

        IEnumerator CaptureThenChat(string line, IEnumerable<SceneEntity> extra)
        {
            Npc.V1.Image screenshot = null;
            if (sendScreenshot)
            {
                yield return new WaitForEndOfFrame();  // ScreenCapture needs the finished frame
                screenshot = CaptureScreenshot();
            }
            var scene = new List<SceneEntity>();
            if (extra != null) scene.AddRange(extra);
            if (sendVisibleTags) scene.AddRange(VisibleTags(NpcScene.MaxEntities - scene.Count));
            var ignored = ChatAsync(line, screenshot, scene);
        }

        /// <summary>The nearest visible NpcTags that are not on this NPC, as scene entities (at most max).</summary>
        List<SceneEntity> VisibleTags(int max)
        {
            var scene = new List<SceneEntity>();
            Camera camera = sceneCamera != null ? sceneCamera : Camera.main;
            foreach (var npcTag in NpcTag.All)
            {
                Rect box;
                float distance;
                if (string.IsNullOrEmpty(npcTag.npcTag) || npcTag.transform.IsChildOf(transform)) continue;
                if (!npcTag.TryScreenBox(camera, out box, out distance)) continue;
                if (sceneMaxDistance > 0f && distance > sceneMaxDistance) continue;
                // TryScreenBox counts y from the top, as ChatRequest.scene does.
                scene.Add(NpcScene.Entity(npcTag.npcTag, npcTag.properName,
                    box.center.x / Screen.width, box.center.y / Screen.height, distance));
            }
            scene.Sort((a, b) => a.Distance.CompareTo(b.Distance));
            if (scene.Count > max) scene.RemoveRange(Math.Max(0, max), scene.Count - Math.Max(0, max));
            return scene;
        }

        async Task ChatAsync(string line, Npc.V1.Image screenshot, List<SceneEntity> scene)
        {
            try
            {
                ShowReply("");
                Done done = await Conversation.SendAsync(line, screenshot, scene, GameState, OnAction, OnDelta);
                if (done == null) return;  // StopTalking: the server stopped decoding and stored nothing
                ShowReply(done.Text);
                OnEmotion(done.Emotion);
                if (logSeen) Debug.Log("npc-sdk: " + npcName + " saw " + NpcScene.Describe(done.Seen), this);
                if (Seen != null && this != null) Seen(done.Seen);
            }
            catch (RpcException e)
            {
                Debug.LogWarning("npc-sdk: " + e.StatusCode + ": " + e.Status.Detail, this);
            }
            catch (Exception e)
            {
                Debug.LogException(e, this);
            }
        }

        void OnAction(ActionCall action)
        {
            if (this == null) return;
            onAction.Invoke(action.Name);
            if (ActionRequested != null) ActionRequested(action);
        }

        // The emotion-to-animation hook: an Animator trigger per emotion, and an event for anything else.
        void OnEmotion(Emotion emotion)
        {
            if (emotion == null || this == null) return;
            string label = emotion.Intensity >= minEmotionIntensity ? emotion.Label : "neutral";
            if (animator != null) animator.SetTrigger(emotionTriggerPrefix + label);
            if (EmotionChanged != null) EmotionChanged(emotion);
        }

        void OnDelta(string delta, string replySoFar)
        {
            ShowReply(replySoFar);
        }

        void ShowReply(string text)
        {
            if (this == null) return;  // destroyed while the reply streamed
            if (replyText != null) replyText.text = text;
            onReply.Invoke(text);
        }

        // ---- screenshot ----

        /// <summary>
        /// The finished frame, downscaled on the GPU to the largest size that fits the image encoder's 448x256 canvas
        /// (NpcScreenshot.TargetSize rounds exactly as the server's letterbox does), read back as raw RGBA32.
        /// Downscaling here rather than on the server keeps the message small (448x252x4 = 452 KB instead of 8.3 MB
        /// for a 1080p frame), skips the server's CPU resize, and costs the GPU a few tiny blits.
        /// </summary>
        Npc.V1.Image CaptureScreenshot()
        {
            int width, height;
            NpcScreenshot.TargetSize(Screen.width, Screen.height, out width, out height);
            var frame = RenderTexture.GetTemporary(
                Screen.width, Screen.height, 0, RenderTextureFormat.ARGB32, RenderTextureReadWrite.sRGB);
            RenderTexture small = null;
            try
            {
                ScreenCapture.CaptureScreenshotIntoRenderTexture(frame);
                bool flip = flipCaptureWhereUvStartsAtTop && SystemInfo.graphicsUVStartsAtTop;
                small = Downscale(frame, width, height, flip);

                if (readback == null || readback.width != width || readback.height != height)
                {
                    if (readback != null) Destroy(readback);
                    readback = new Texture2D(width, height, TextureFormat.RGBA32, false);
                }
                var previous = RenderTexture.active;
                RenderTexture.active = small;
                readback.ReadPixels(new Rect(0, 0, width, height), 0, 0, false);
                RenderTexture.active = previous;
                // A Texture2D's raw data starts with the bottom row: bottom_up = true, and the server flips it.
                // (AsyncGPUReadback would avoid the one-frame GPU stall of ReadPixels, at 357 KB rarely worth it.)
                return NpcScreenshot.Rgba8(readback.GetRawTextureData(), width, height, true);
            }
            finally
            {
                RenderTexture.ReleaseTemporary(frame);
                if (small != null) RenderTexture.ReleaseTemporary(small);
            }
        }

        /// <summary>
        /// Halves with bilinear blits while the picture is at least twice the target (each pass averages exactly
        /// 2x2 pixels, so no detail is skipped and nothing aliases), then one last blit to the exact size, flipped
        /// vertically when <paramref name="flip"/>. Returns a temporary RenderTexture the caller releases.
        /// </summary>
        static RenderTexture Downscale(RenderTexture source, int width, int height, bool flip)
        {
            RenderTexture current = source;
            int w = source.width, h = source.height;
            while (w / 2 >= width && h / 2 >= height)
            {
                w /= 2;
                h /= 2;
                var half = RenderTexture.GetTemporary(w, h, 0, RenderTextureFormat.ARGB32, RenderTextureReadWrite.sRGB);
                current.filterMode = FilterMode.Bilinear;
                Graphics.Blit(current, half);
                if (current != source) RenderTexture.ReleaseTemporary(current);
                current = half;
            }
            var target = RenderTexture.GetTemporary(
                width, height, 0, RenderTextureFormat.ARGB32, RenderTextureReadWrite.sRGB);
            current.filterMode = FilterMode.Bilinear;
            if (flip) Graphics.Blit(current, target, new Vector2(1f, -1f), new Vector2(0f, 1f));
            else Graphics.Blit(current, target);
            if (current != source) RenderTexture.ReleaseTemporary(current);
            return target;
        }
    }
}
