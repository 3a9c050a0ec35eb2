// npc-sdk Godot 4 (.NET) sample: an NPC that talks through npc.v1.NpcService, sees the viewport and streams its
// reply into a Label or RichTextLabel. Needs scripts/gen_csharp.sh's output (Npc.cs + the shared client) in the
// project and the PackageReferences of NpcSdk.props. Syntax kept to what mono's mcs parses (README: C# features).

using System;
using System.Collections.Generic;
using System.Net.Http;
using System.Threading.Tasks;
using Godot;
using Grpc.Core;
using Grpc.Net.Client;
using Npc.V1;
using NpcImage = Npc.V1.Image;

namespace NpcSdk
{
    /// <summary>
    /// Add it under an NPC. A body in <see cref="PlayerGroup"/> entering <see cref="TalkArea"/> opens the session
    /// and shows the greeting; <see cref="Say"/> (e.g. connected to a LineEdit's text_submitted) sends a line with
    /// a screenshot and streams the reply; the body leaving, <see cref="StopTalking"/> or the node leaving the tree
    /// cancels a reply still streaming (the server then stores nothing for that turn).
    /// </summary>
    public partial class NpcDialogue : Node
    {
        [Signal]
        public delegate void ReplyFinishedEventHandler(string text);

        /// <summary>The player's line asked for a declared action (before the reply's text): args name -> value.</summary>
        [Signal]
        public delegate void ActionRequestedEventHandler(string name, Godot.Collections.Dictionary args, float confidence);

        /// <summary>What the reply carries: neutral, joy, anger, sadness, fear, surprise or disgust (0..1).</summary>
        [Signal]
        public delegate void EmotionChangedEventHandler(string label, float intensity);

        /// <summary>Plays "<prefix><emotion>" (emotion_joy, ...) after each reply when it has that animation.</summary>
        [ExportGroup("Emotion")]
        [Export] public AnimationPlayer EmotionAnimations;
        [Export] public string EmotionAnimationPrefix = "emotion_";

        /// <summary>Game facts sent with every line (at most 16), e.g. GameState["player_health"] = "low".</summary>
        public readonly System.Collections.Generic.Dictionary<string, string> GameState =
            new System.Collections.Generic.Dictionary<string, string>();

        [ExportGroup("Server")]
        [Export] public string ServerAddress = "http://127.0.0.1:50051";

        /// <summary>The server's --api-key (empty: none). Anything in an exported game can be read out of it.</summary>
        [Export] public string ApiKey = "";

        /// <summary>A persona the server loaded with --personas DIR (e.g. brakka); when set, the fields below are unused.</summary>
        [ExportGroup("Persona")]
        [Export] public string PersonaId = "";

        [Export] public string NpcName = "Brakka";
        [Export(PropertyHint.MultilineText)] public string Description = "A gruff dwarven blacksmith who runs the forge in Emberfall.";
        [Export(PropertyHint.MultilineText)] public string Personality = "";
        [Export(PropertyHint.MultilineText)] public string Scenario = "";
        [Export(PropertyHint.MultilineText)] public string Greeting = "Hmph. Another traveller. Mind the anvil, it bites.";
        [Export(PropertyHint.MultilineText)] public string Style = "";

        /// <summary>Role-word constraint: word (String) -> logit bonus (float, -10..10).</summary>
        [Export] public Godot.Collections.Dictionary RoleWords = new Godot.Collections.Dictionary();

        /// <summary>Client-chosen id ([A-Za-z0-9_.-], up to 64): the same id resumes the same conversation.</summary>
        [Export] public string SessionId = "";

        /// <summary>A Label or a RichTextLabel (with BBCode off: the reply is plain text).</summary>
        [ExportGroup("Reply")]
        [Export] public Control ReplyLabel;

        [Export] public int MaxTokens = 80;  // 0: the server's default
        [Export] public float ReplyTimeoutSeconds = 60f;  // retries included; 0: no limit

        /// <summary>
        /// Calls per line, the first included: a line the server could not be reached for (restarting, network gone)
        /// is sent again with the same turn id, and a reply it stored is replayed, not rerun.
        /// </summary>
        [Export] public int Attempts = 4;

        [ExportGroup("Screenshot")]
        [Export] public bool SendScreenshot = true;

        /// <summary>
        /// Tell the NPC what the game knows is in view: nodes in this group with an "npc_tag" metadata entry
        /// (and optionally "npc_name") that are on screen go out as ChatRequest.scene with their screen position
        /// (and distance, for 3D), the nearest 32. The group samples/godot/capture labels pictures from. Empty: none.
        /// </summary>
        [ExportGroup("Scene")]
        [Export] public string SceneGroup = "npc_tag";

        [Export] public float SceneMaxDistance = 40f;  // metres from the camera, 3D only; 0: no limit

        /// <summary>Print what the NPC saw in the screenshot or was told (Done.seen) after each reply.</summary>
        [Export] public bool LogSeen = true;

        [ExportGroup("Trigger")]
        [Export] public Area3D TalkArea;
        [Export] public string PlayerGroup = "player";

        /// <summary>
        /// After each reply, on the main thread: what the NPC saw in the screenshot or was told by the game, most
        /// certain first (SeenTag: Tag, Score 0..1, Source "screenshot", "game" or "both").
        /// </summary>
        public event Action<IList<SeenTag>> Seen;

        // One HTTP/2 connection per server address, shared by every NPC: each reply is a stream on it.
        static readonly Dictionary<string, GrpcChannel> Channels = new Dictionary<string, GrpcChannel>();

        NpcConversation conversation;

        // The session, its replies, cancel, retry and forget (samples/csharp_common/NpcConversation.cs). Its
        // ReplyNumber goes up at every StopTalking: deltas of a cancelled reply that arrive late are dropped by it.
        NpcConversation Conversation
        {
            get
            {
                if (conversation == null)
                {
                    var client = new NpcServiceClient(ChannelFor(ServerAddress), ApiKey);
                    // false: the stream is read on thread-pool threads; the callbacks below marshal with CallDeferred.
                    conversation = new NpcConversation(client, CreateRequest, false);
                }
                conversation.SessionId = SessionId;
                conversation.MaxTokens = MaxTokens;
                conversation.ReplyTimeoutSeconds = ReplyTimeoutSeconds;
                conversation.Attempts = Attempts;
                return conversation;
            }
        }

        /// <summary>The HTTP/2 channel to a server address, made once and shared by every NPC and scene.</summary>
        internal static GrpcChannel ChannelFor(string address)
        {
            GrpcChannel channel;
            if (!Channels.TryGetValue(address, out channel))
            {
                // Godot .NET runs on .NET 6+, whose SocketsHttpHandler speaks HTTP/2 itself, with TLS (https://)
                // or without (http://, the server's default): no extra handler package is needed.
                channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions
                {
                    HttpHandler = new SocketsHttpHandler
                    {
                        EnableMultipleHttp2Connections = true,
                        KeepAlivePingDelay = TimeSpan.FromSeconds(60),
                        KeepAlivePingTimeout = TimeSpan.FromSeconds(20),
                    },
                    DisposeHttpClient = true,
                    // GetSession returns the whole history; allow what the server allows (--max-message-mb 64).
                    MaxReceiveMessageSize = 64 * 1024 * 1024,
                });
                Channels[address] = channel;
            }
            return channel;
        }

        // Subscribed on entering and unsubscribed on leaving the tree, so a node that is removed and added again
        // (a pooled NPC) keeps listening.
        public override void _EnterTree()
        {
            if (TalkArea != null)
            {
                TalkArea.BodyEntered += OnBodyEntered;
                TalkArea.BodyExited += OnBodyExited;
            }
        }

        public override void _ExitTree()
        {
            StopTalking();
            if (TalkArea != null)
            {
                TalkArea.BodyEntered -= OnBodyEntered;
                TalkArea.BodyExited -= OnBodyExited;
            }
        }

        void OnBodyEntered(Node3D body)
        {
            if (body.IsInGroup(PlayerGroup)) StartTalking();
        }

        void OnBodyExited(Node3D body)
        {
            if (body.IsInGroup(PlayerGroup)) StopTalking();
        }

        // ---- talking ----

        /// <summary>Opens (or resumes) the session and shows the greeting, or the last reply of a resumed one.</summary>
        public void StartTalking()
        {
            var ignored = GreetAsync();
        }

        /// <summary>The player's line: captures the next drawn frame, then streams the reply.</summary>
        public void Say(string line)
        {
            SayWithScene(line, null);
        }

        /// <summary>
        /// <see cref="Say"/> with scene entities of the game's own (NpcScene.Entity("ferryman", "Old Tom the
        /// ferryman", x, y, metres)), sent with the tagged nodes on screen.
        /// </summary>
        public void SayWithScene(string line, IEnumerable<SceneEntity> scene)
        {
            if (string.IsNullOrEmpty(line)) return;
            StopTalking();
            var ignored = SayAsync(line, scene, Conversation.ReplyNumber);
        }

        /// <summary>Cancels the reply being streamed (the turn is then not stored).</summary>
        public void StopTalking()
        {
            if (conversation != null) conversation.Cancel();
        }

        /// <summary>Deletes this NPC's session on the server: the next line starts a new conversation.</summary>
        public Task ForgetConversationAsync()
        {
            return Conversation.ForgetAsync();
        }

        CreateSessionRequest CreateRequest()
        {
            var request = new CreateSessionRequest();
            if (!string.IsNullOrEmpty(PersonaId))
            {
                request.PersonaId = PersonaId;
                return request;
            }
            var persona = new Persona
            {
                Name = NpcName ?? "",
                Description = Description ?? "",
                Personality = Personality ?? "",
                Scenario = Scenario ?? "",
                Greeting = Greeting ?? "",
                Style = Style ?? "",
            };
            foreach (var entry in RoleWords)
            {
                persona.RoleWords[entry.Key.AsString()] = entry.Value.AsSingle();
            }
            request.Persona = persona;
            return request;
        }

        async Task GreetAsync()
        {
            try
            {
                string text = await Conversation.OpeningLineAsync();
                if (!string.IsNullOrEmpty(text)) ShowReply(text, Conversation.ReplyNumber);
            }
            catch (Exception e)
            {
                GD.PushWarning("npc-sdk: could not open the session for " + NpcName + ": " + e.Message);
            }
        }

        static Godot.Collections.Dictionary ArgsOf(ActionCall action)
        {
            var args = new Godot.Collections.Dictionary();
            foreach (var pair in action.Args) args[pair.Key] = pair.Value;
            return args;
        }

        void RequestAction(string name, Godot.Collections.Dictionary args, float confidence)
        {
            EmitSignal(SignalName.ActionRequested, name, args, confidence);
        }

        // The emotion-to-animation hook: an AnimationPlayer clip per emotion, and a signal for anything else.
        void PlayEmotion(string label, float intensity)
        {
            EmitSignal(SignalName.EmotionChanged, label, intensity);
            string clip = EmotionAnimationPrefix + label;
            if (EmotionAnimations != null && EmotionAnimations.HasAnimation(clip)) EmotionAnimations.Play(clip);
        }

        async Task SayAsync(string line, IEnumerable<SceneEntity> extra, int number)
        {
            try
            {
                NpcImage screenshot = null;
                if (SendScreenshot) screenshot = await CaptureScreenshotAsync();
                if (number != Conversation.ReplyNumber) return;  // StopTalking while waiting for the frame
                var scene = new List<SceneEntity>();  // what is on screen in the frame just captured
                if (extra != null) scene.AddRange(extra);
                scene.AddRange(VisibleTags(NpcScene.MaxEntities - scene.Count));
                ShowReply("", number);
                // The stream is read on thread-pool threads and these callbacks may not touch nodes: CallDeferred
                // queues them for the main thread's idle time.
                Done done = await Conversation.SendAsync(
                    line, screenshot, scene, GameState,
                    action => CallDeferred(MethodName.RequestAction, action.Name, ArgsOf(action), action.Confidence),
                    (delta, replySoFar) => CallDeferred(MethodName.ShowReply, replySoFar, number));
                if (done == null) return;  // StopTalking: the server stopped decoding and stored nothing
                // Back on the main thread here: this method was started there and awaits without ConfigureAwait,
                // and Godot's SynchronizationContext resumes it there. The deferred deltas run before the idle
                // callbacks of the next frame; done comes through the same queue so it lands after them.
                CallDeferred(MethodName.ShowReply, done.Text, number);
                EmitSignal(SignalName.ReplyFinished, done.Text);
                if (done.Emotion != null) PlayEmotion(done.Emotion.Label, done.Emotion.Intensity);
                if (LogSeen) GD.Print("npc-sdk: " + NpcName + " saw " + NpcScene.Describe(done.Seen));
                if (Seen != null) Seen(done.Seen);
            }
            catch (RpcException e)
            {
                GD.PushWarning("npc-sdk: " + e.StatusCode + ": " + e.Status.Detail);
            }
            catch (Exception e)
            {
                GD.PushError("npc-sdk: " + e);
            }
        }

        /// <summary>Main thread only (called directly there, or through CallDeferred).</summary>
        public void ShowReply(string text, int number)
        {
            if (number != Conversation.ReplyNumber || ReplyLabel == null) return;
            var label = ReplyLabel as Label;
            if (label != null)
            {
                label.Text = text;
                return;
            }
            var rich = ReplyLabel as RichTextLabel;
            if (rich != null) rich.Text = text;
        }

        /// <summary>
        /// The nearest tagged nodes on screen (SceneGroup, "npc_tag" metadata), not this NPC, as scene entities:
        /// a Node3D by its origin through the viewport's camera, a Node2D by its canvas position.
        /// </summary>
        List<SceneEntity> VisibleTags(int max)
        {
            var scene = new List<SceneEntity>();
            if (string.IsNullOrEmpty(SceneGroup)) return scene;
            Viewport viewport = GetViewport();
            Vector2 size = viewport.GetVisibleRect().Size;
            Camera3D camera = viewport.GetCamera3D();
            foreach (Node node in GetTree().GetNodesInGroup(SceneGroup))
            {
                string tag = node.GetMeta("npc_tag", "").AsString();
                if (tag == "" || node.IsAncestorOf(this)) continue;
                Vector2 at;
                float distance = float.NaN;
                var node3D = node as Node3D;
                var node2D = node as Node2D;
                if (node3D != null && camera != null)
                {
                    if (!node3D.IsVisibleInTree() || !camera.IsPositionInFrustum(node3D.GlobalPosition)) continue;
                    at = camera.UnprojectPosition(node3D.GlobalPosition);
                    distance = camera.GlobalPosition.DistanceTo(node3D.GlobalPosition);
                    if (SceneMaxDistance > 0f && distance > SceneMaxDistance) continue;
                }
                else if (node2D != null)
                {
                    at = node2D.GetGlobalTransformWithCanvas().Origin;
                    if (!node2D.IsVisibleInTree() || !new Rect2(Vector2.Zero, size).HasPoint(at)) continue;
                }
                else continue;
                scene.Add(NpcScene.Entity(tag, node.GetMeta("npc_name", "").AsString(), at.X / size.X, at.Y / size.Y,
                    distance));
            }
            // Nearest first; 2D nodes have no distance and come after the 3D ones.
            scene.Sort((a, b) => (a.HasDistance ? a.Distance : float.MaxValue).CompareTo(
                b.HasDistance ? b.Distance : float.MaxValue));
            if (scene.Count > max) scene.RemoveRange(Math.Max(0, max), scene.Count - Math.Max(0, max));
            return scene;
        }

        // ---- screenshot ----

        /// <summary>
        /// The next drawn frame of this node's viewport, scaled to fit the image encoder's 448x256 canvas
        /// (NpcScreenshot.TargetSize rounds exactly as the server's letterbox does), as raw RGBA8, top row first.
        /// Scaling here keeps the message small (448x252x4 = 452 KB instead of 8.3 MB for a 1080p frame) and skips
        /// the server's resize. Image.Resize runs on the CPU; Trilinear filters through mipmaps, so the ~5x
        /// reduction does not alias.
        /// </summary>
        async Task<NpcImage> CaptureScreenshotAsync()
        {
            await ToSignal(RenderingServer.Singleton, RenderingServer.SignalName.FramePostDraw);
            Godot.Image frame = GetViewport().GetTexture().GetImage();
            int width, height;
            NpcScreenshot.TargetSize(frame.GetWidth(), frame.GetHeight(), out width, out height);
            if (frame.GetFormat() != Godot.Image.Format.Rgba8) frame.Convert(Godot.Image.Format.Rgba8);
            if (width != frame.GetWidth() || height != frame.GetHeight())
            {
                frame.Resize(width, height, Godot.Image.Interpolation.Trilinear);
            }
            // Image.GetData is top row first: bottom_up = false.
            return NpcScreenshot.Rgba8(frame.GetData(), width, height, false);
        }
    }
}
