// npc-sdk C# client for npc.v1.NpcService, shared by the Unity and Godot samples.
//
// Hand-written over Grpc.Core.CallInvoker so that no gRPC code generator (Grpc.Tools) is needed: the message
// classes come from plain `protoc --csharp_out` (scripts/gen_csharp.sh writes Npc.cs next to this file), and the
// method descriptors below say what Grpc.Tools' generated NpcService.NpcServiceClient would say for the RPCs the
// samples use (sessions, Chat, Shutdown, and the scene calls CreateScene, DeleteScene, SceneChat, Converse). Needs
// the NuGet packages Google.Protobuf and Grpc.Core.Api (Grpc.Net.Client brings the latter).
//
// Syntax kept to what mono's mcs 6.8 parses (CI checks every sample file with `mcs --parse`): no `await foreach`,
// no `using var`, no switch expressions, no local functions, no `default` literal, no nullable annotations.

using System;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Google.Protobuf;
using Grpc.Core;
using Npc.V1;

namespace NpcSdk
{
    /// <summary>Calls npc.v1.NpcService through any CallInvoker (a GrpcChannel's, or one with interceptors).</summary>
    public sealed class NpcServiceClient
    {
        public const string ServiceName = "npc.v1.NpcService";

        static Marshaller<T> MarshallerFor<T>(MessageParser<T> parser) where T : IMessage<T>
        {
            return Marshallers.Create<T>(message => message.ToByteArray(), parser.ParseFrom);
        }

        static readonly Marshaller<CreateSessionRequest> CreateSessionRequestMarshaller =
            MarshallerFor(CreateSessionRequest.Parser);
        static readonly Marshaller<GetSessionRequest> GetSessionRequestMarshaller = MarshallerFor(GetSessionRequest.Parser);
        static readonly Marshaller<DeleteSessionRequest> DeleteSessionRequestMarshaller =
            MarshallerFor(DeleteSessionRequest.Parser);
        static readonly Marshaller<DeleteSessionResponse> DeleteSessionResponseMarshaller =
            MarshallerFor(DeleteSessionResponse.Parser);
        static readonly Marshaller<Session> SessionMarshaller = MarshallerFor(Session.Parser);
        static readonly Marshaller<ChatRequest> ChatRequestMarshaller = MarshallerFor(ChatRequest.Parser);
        static readonly Marshaller<ChatEvent> ChatEventMarshaller = MarshallerFor(ChatEvent.Parser);
        static readonly Marshaller<ShutdownRequest> ShutdownRequestMarshaller = MarshallerFor(ShutdownRequest.Parser);
        static readonly Marshaller<ShutdownResponse> ShutdownResponseMarshaller =
            MarshallerFor(ShutdownResponse.Parser);
        static readonly Marshaller<CreateSceneRequest> CreateSceneRequestMarshaller =
            MarshallerFor(CreateSceneRequest.Parser);
        static readonly Marshaller<Scene> SceneMarshaller = MarshallerFor(Scene.Parser);
        static readonly Marshaller<DeleteSceneRequest> DeleteSceneRequestMarshaller =
            MarshallerFor(DeleteSceneRequest.Parser);
        static readonly Marshaller<DeleteSceneResponse> DeleteSceneResponseMarshaller =
            MarshallerFor(DeleteSceneResponse.Parser);
        static readonly Marshaller<SceneChatRequest> SceneChatRequestMarshaller =
            MarshallerFor(SceneChatRequest.Parser);
        static readonly Marshaller<ConverseRequest> ConverseRequestMarshaller = MarshallerFor(ConverseRequest.Parser);
        static readonly Marshaller<SceneEvent> SceneEventMarshaller = MarshallerFor(SceneEvent.Parser);
        static readonly Marshaller<byte[]> BytesMarshaller =
            Marshallers.Create<byte[]>(bytes => bytes, bytes => bytes);

        /// <summary>rpc CreateSession(CreateSessionRequest) returns (Session)</summary>
        public static readonly Method<CreateSessionRequest, Session> CreateSessionMethod =
            new Method<CreateSessionRequest, Session>(
                MethodType.Unary, ServiceName, "CreateSession", CreateSessionRequestMarshaller, SessionMarshaller);

        /// <summary>rpc GetSession(GetSessionRequest) returns (Session)</summary>
        public static readonly Method<GetSessionRequest, Session> GetSessionMethod =
            new Method<GetSessionRequest, Session>(
                MethodType.Unary, ServiceName, "GetSession", GetSessionRequestMarshaller, SessionMarshaller);

        /// <summary>rpc DeleteSession(DeleteSessionRequest) returns (DeleteSessionResponse)</summary>
        public static readonly Method<DeleteSessionRequest, DeleteSessionResponse> DeleteSessionMethod =
            new Method<DeleteSessionRequest, DeleteSessionResponse>(
                MethodType.Unary, ServiceName, "DeleteSession", DeleteSessionRequestMarshaller,
                DeleteSessionResponseMarshaller);

        /// <summary>rpc Chat(ChatRequest) returns (stream ChatEvent)</summary>
        public static readonly Method<ChatRequest, ChatEvent> ChatMethod =
            new Method<ChatRequest, ChatEvent>(
                MethodType.ServerStreaming, ServiceName, "Chat", ChatRequestMarshaller, ChatEventMarshaller);

        /// <summary>rpc Shutdown(ShutdownRequest) returns (ShutdownResponse)</summary>
        public static readonly Method<ShutdownRequest, ShutdownResponse> ShutdownMethod =
            new Method<ShutdownRequest, ShutdownResponse>(
                MethodType.Unary, ServiceName, "Shutdown", ShutdownRequestMarshaller, ShutdownResponseMarshaller);

        /// <summary>rpc CreateScene(CreateSceneRequest) returns (Scene)</summary>
        public static readonly Method<CreateSceneRequest, Scene> CreateSceneMethod =
            new Method<CreateSceneRequest, Scene>(
                MethodType.Unary, ServiceName, "CreateScene", CreateSceneRequestMarshaller, SceneMarshaller);

        /// <summary>rpc DeleteScene(DeleteSceneRequest) returns (DeleteSceneResponse)</summary>
        public static readonly Method<DeleteSceneRequest, DeleteSceneResponse> DeleteSceneMethod =
            new Method<DeleteSceneRequest, DeleteSceneResponse>(
                MethodType.Unary, ServiceName, "DeleteScene", DeleteSceneRequestMarshaller,
                DeleteSceneResponseMarshaller);

        /// <summary>rpc SceneChat(SceneChatRequest) returns (stream SceneEvent)</summary>
        public static readonly Method<SceneChatRequest, SceneEvent> SceneChatMethod =
            new Method<SceneChatRequest, SceneEvent>(
                MethodType.ServerStreaming, ServiceName, "SceneChat", SceneChatRequestMarshaller, SceneEventMarshaller);

        /// <summary>rpc Converse(ConverseRequest) returns (stream SceneEvent)</summary>
        public static readonly Method<ConverseRequest, SceneEvent> ConverseMethod =
            new Method<ConverseRequest, SceneEvent>(
                MethodType.ServerStreaming, ServiceName, "Converse", ConverseRequestMarshaller, SceneEventMarshaller);

        /// <summary>grpc.health.v1.Health/Check as raw bytes, so that no health package is needed: the request
        /// (service "") is an empty message, and the response's field 1 is the status (1 = SERVING).</summary>
        public static readonly Method<byte[], byte[]> HealthCheckMethod =
            new Method<byte[], byte[]>(
                MethodType.Unary, "grpc.health.v1.Health", "Check", BytesMarshaller, BytesMarshaller);

        readonly CallInvoker invoker;
        readonly Metadata headers;

        /// <param name="invoker">e.g. <c>GrpcChannel.ForAddress(...).CreateCallInvoker()</c></param>
        /// <param name="apiKey">the server's --api-key; sent as "authorization: Bearer KEY" (null or empty: none)</param>
        public NpcServiceClient(CallInvoker invoker, string apiKey)
        {
            if (invoker == null) throw new ArgumentNullException("invoker");
            this.invoker = invoker;
            if (!string.IsNullOrEmpty(apiKey))
            {
                headers = new Metadata();
                headers.Add("authorization", "Bearer " + apiKey);
            }
        }

        public NpcServiceClient(ChannelBase channel, string apiKey) : this(channel.CreateCallInvoker(), apiKey)
        {
        }

        CallOptions Options(DateTime? deadline, CancellationToken cancellationToken)
        {
            return new CallOptions(headers, deadline, cancellationToken);
        }

        public AsyncUnaryCall<Session> CreateSessionAsync(
            CreateSessionRequest request, DateTime? deadline, CancellationToken cancellationToken)
        {
            return invoker.AsyncUnaryCall(CreateSessionMethod, null, Options(deadline, cancellationToken), request);
        }

        public AsyncUnaryCall<Session> GetSessionAsync(
            GetSessionRequest request, DateTime? deadline, CancellationToken cancellationToken)
        {
            return invoker.AsyncUnaryCall(GetSessionMethod, null, Options(deadline, cancellationToken), request);
        }

        public AsyncUnaryCall<DeleteSessionResponse> DeleteSessionAsync(
            DeleteSessionRequest request, DateTime? deadline, CancellationToken cancellationToken)
        {
            return invoker.AsyncUnaryCall(DeleteSessionMethod, null, Options(deadline, cancellationToken), request);
        }

        /// <summary>
        /// Stops the server as SIGTERM would: turns in flight get its grace period to finish, the store is flushed,
        /// the process exits 0. Needs the server's key (a server without one answers PermissionDenied).
        /// NpcServerProcess calls it when the game quits.
        /// </summary>
        public AsyncUnaryCall<ShutdownResponse> ShutdownAsync(
            ShutdownRequest request, DateTime? deadline, CancellationToken cancellationToken)
        {
            return invoker.AsyncUnaryCall(ShutdownMethod, null, Options(deadline, cancellationToken), request);
        }

        /// <summary>True when the server answers the standard health check with SERVING (no key needed); false when
        /// it answers NOT_SERVING (it is shutting down). A server that cannot be reached throws RpcException.
        /// </summary>
        public async Task<bool> IsServingAsync(DateTime? deadline, CancellationToken cancellationToken)
        {
            byte[] response = await invoker.AsyncUnaryCall(
                HealthCheckMethod, null, new CallOptions(null, deadline, cancellationToken), new byte[0])
                .ResponseAsync.ConfigureAwait(false);
            ulong status = 0;  // proto3: an absent field is 0 (UNKNOWN)
            for (int i = 0; i < response.Length && response[i] == 0x08;)  // field 1, varint
            {
                i++;
                status = 0;
                for (int shift = 0; i < response.Length && shift < 64; shift += 7)
                {
                    byte b = response[i++];
                    status |= (ulong)(b & 0x7F) << shift;
                    if ((b & 0x80) == 0) break;
                }
            }
            return status == 1;
        }

        /// <summary>The raw stream: delta events, then one done event. Cancelling the token stops the reply within
        /// one decode step on the server, and a cancelled turn is not stored.</summary>
        public AsyncServerStreamingCall<ChatEvent> Chat(
            ChatRequest request, DateTime? deadline, CancellationToken cancellationToken)
        {
            return invoker.AsyncServerStreamingCall(ChatMethod, null, Options(deadline, cancellationToken), request);
        }

        /// <summary>A scene of 2-6 existing sessions (docs/scenes.md): every NPC in it hears what is said there.
        /// </summary>
        public AsyncUnaryCall<Scene> CreateSceneAsync(
            CreateSceneRequest request, DateTime? deadline, CancellationToken cancellationToken)
        {
            return invoker.AsyncUnaryCall(CreateSceneMethod, null, Options(deadline, cancellationToken), request);
        }

        /// <summary>Ends a scene (a talk in flight is interrupted); its sessions stay.</summary>
        public AsyncUnaryCall<DeleteSceneResponse> DeleteSceneAsync(
            DeleteSceneRequest request, DateTime? deadline, CancellationToken cancellationToken)
        {
            return invoker.AsyncUnaryCall(DeleteSceneMethod, null, Options(deadline, cancellationToken), request);
        }

        /// <summary>The raw stream of a line said to a scene: the answering NPC's events (each SceneEvent with its
        /// SessionId and Speaker). It interrupts a Converse in flight on that scene.</summary>
        public AsyncServerStreamingCall<SceneEvent> SceneChat(
            SceneChatRequest request, DateTime? deadline, CancellationToken cancellationToken)
        {
            return invoker.AsyncServerStreamingCall(
                SceneChatMethod, null, Options(deadline, cancellationToken), request);
        }

        /// <summary>The raw stream of the NPCs talking among themselves; its last event has Interrupted set when a
        /// SceneChat, a DeleteScene or cancelling the token cut it short.</summary>
        public AsyncServerStreamingCall<SceneEvent> Converse(
            ConverseRequest request, DateTime? deadline, CancellationToken cancellationToken)
        {
            return invoker.AsyncServerStreamingCall(
                ConverseMethod, null, Options(deadline, cancellationToken), request);
        }

        /// <summary>
        /// Reads a SceneChat or Converse stream to its end: <paramref name="onEvent"/> gets every event with the
        /// speaker's line so far (the whole line at its done), on the thread that
        /// <paramref name="continueOnCapturedContext"/> picks (as in StreamReplyAsync). Returns true when the stream
        /// ended interrupted.
        /// </summary>
        public async Task<bool> StreamSceneAsync(
            AsyncServerStreamingCall<SceneEvent> call, Action<SceneEvent, string> onEvent,
            bool continueOnCapturedContext, CancellationToken cancellationToken)
        {
            bool interrupted = false;
            var line = new StringBuilder();
            using (call)
            {
                while (await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(continueOnCapturedContext))
                {
                    var ev = call.ResponseStream.Current;
                    if (ev.Interrupted) interrupted = true;
                    var kind = ev.Event != null ? ev.Event.EventCase : ChatEvent.EventOneofCase.None;
                    if (kind == ChatEvent.EventOneofCase.Delta) line.Append(ev.Event.Delta.Text);
                    string soFar = kind == ChatEvent.EventOneofCase.Done ? ev.Event.Done.Text : line.ToString();
                    if (kind == ChatEvent.EventOneofCase.Done || ev.Interrupted) line.Clear();  // the next line starts
                    if (onEvent != null) onEvent(ev, soFar);
                }
            }
            return interrupted;
        }

        /// <summary>
        /// The session named <paramref name="sessionId"/> if the server has it (a save game, a scene reload),
        /// else a new one from <paramref name="create"/>, under that id when one is given.
        /// </summary>
        public async Task<Session> OpenSessionAsync(
            string sessionId, CreateSessionRequest create, DateTime? deadline, CancellationToken cancellationToken)
        {
            if (!string.IsNullOrEmpty(sessionId))
            {
                try
                {
                    return await GetSessionAsync(
                        new GetSessionRequest { SessionId = sessionId }, deadline, cancellationToken);
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
                {
                    // first time this id is used: create it below
                }
                create = create.Clone();
                create.SessionId = sessionId;
            }
            return await CreateSessionAsync(create, deadline, cancellationToken);
        }

        /// <summary>
        /// Runs one player turn and returns its done event (whole reply, finish reason, usage, timings, and Seen:
        /// what the NPC saw in the screenshot or was told in <c>request.Scene</c>, most certain first, each a
        /// SeenTag with Tag, Score and Source "screenshot", "game" or "both"; NpcScene.Describe makes it a log line).
        /// Put what the game knows is in view into <c>request.Scene</c> (at most 32; NpcScene.Entity builds one).
        /// <paramref name="onDelta"/> gets (delta, reply so far) for every delta event, on the thread that resumes
        /// after each read: the caller's SynchronizationContext when <paramref name="continueOnCapturedContext"/>
        /// is true (Unity: the main thread), a thread-pool thread when false (Godot: marshal to the main thread
        /// with CallDeferred). Cancellation surfaces as RpcException with StatusCode.Cancelled.
        /// </summary>
        public Task<Done> StreamReplyAsync(
            ChatRequest request, Action<string, string> onDelta, bool continueOnCapturedContext,
            DateTime? deadline, CancellationToken cancellationToken)
        {
            return StreamReplyAsync(request, null, onDelta, continueOnCapturedContext, deadline, cancellationToken);
        }

        /// <summary>
        /// As above, and <paramref name="onAction"/> gets the declared action the line asked for (at most one per
        /// turn, before the first delta: name, Args as text, Confidence), on the same thread as onDelta: start the
        /// animation or the gameplay there. Done.Emotion (Label, Intensity) is for an emotion-to-animation hook.
        /// Put game facts into <c>request.State</c> ("player_health" = "low"; at most 16).
        /// </summary>
        public async Task<Done> StreamReplyAsync(
            ChatRequest request, Action<ActionCall> onAction, Action<string, string> onDelta,
            bool continueOnCapturedContext, DateTime? deadline, CancellationToken cancellationToken)
        {
            Done done = null;
            var reply = new StringBuilder();
            using (var call = Chat(request, deadline, cancellationToken))
            {
                // Read to the end, not just to done: the trailers carry any error status after it.
                while (await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(continueOnCapturedContext))
                {
                    var ev = call.ResponseStream.Current;
                    if (ev.EventCase == ChatEvent.EventOneofCase.Action)
                    {
                        if (onAction != null) onAction(ev.Action);
                    }
                    else if (ev.EventCase == ChatEvent.EventOneofCase.Delta)
                    {
                        reply.Append(ev.Delta.Text);
                        if (onDelta != null) onDelta(ev.Delta.Text, reply.ToString());
                    }
                    else if (ev.EventCase == ChatEvent.EventOneofCase.Done)
                    {
                        done = ev.Done;
                    }
                }
            }
            if (done == null)
            {
                throw new RpcException(new Status(StatusCode.Internal, "chat: the stream ended without a done event"));
            }
            return done;
        }

        /// <summary>
        /// One player turn that survives a server restart: sets <c>request.TurnId</c> (a new Guid when empty) and,
        /// when no seed is set, a seed derived from it, then retries a call that fails with Unavailable, up to
        /// <paramref name="attempts"/> calls, backing off from 250 ms to 4 s. The server replays a committed turn and
        /// re-runs one that was cut off; <paramref name="onDelta"/> never gets the same text twice.
        /// </summary>
        public async Task<Done> StreamReplyWithRetryAsync(
            ChatRequest request, Action<ActionCall> onAction, Action<string, string> onDelta,
            bool continueOnCapturedContext, int attempts, DateTime? deadline, CancellationToken cancellationToken)
        {
            if (string.IsNullOrEmpty(request.TurnId)) request.TurnId = Guid.NewGuid().ToString("N");
            if (request.Generation == null) request.Generation = new GenerationConfig();
            if (!request.Generation.HasSeed) request.Generation.Seed = SeedOf(request.TurnId);
            string delivered = "";
            bool actionSeen = false;
            var backoff = TimeSpan.FromMilliseconds(250);
            for (int attempt = 1; ; attempt++)
            {
                try
                {
                    return await StreamReplyAsync(
                        request,
                        action =>
                        {
                            if (actionSeen) return;
                            actionSeen = true;
                            if (onAction != null) onAction(action);
                        },
                        (delta, replySoFar) =>
                        {
                            if (replySoFar.Length <= delivered.Length) return;  // already delivered last attempt
                            if (!replySoFar.StartsWith(delivered, StringComparison.Ordinal))
                                throw new RpcException(new Status(StatusCode.Aborted,
                                    "the retried turn's reply differs from what was streamed"));
                            string fresh = replySoFar.Substring(delivered.Length);
                            delivered = replySoFar;
                            if (onDelta != null) onDelta(fresh, replySoFar);
                        },
                        continueOnCapturedContext, deadline, cancellationToken).ConfigureAwait(continueOnCapturedContext);
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && attempt < attempts
                                             && (deadline == null || DateTime.UtcNow + backoff < deadline.Value))
                {
                    await Task.Delay(backoff, cancellationToken).ConfigureAwait(continueOnCapturedContext);
                    backoff = TimeSpan.FromMilliseconds(Math.Min(4000, backoff.TotalMilliseconds * 2));
                }
            }
        }

        // FNV-1a, as the C++ client does: the same seed for the same turn id on every platform.
        static ulong SeedOf(string turnId)
        {
            ulong h = 1469598103934665603UL;
            foreach (char c in turnId)
            {
                h = (h ^ c) * 1099511628211UL;
            }
            return h & 0x7fffffffffffffffUL;
        }
    }
}
