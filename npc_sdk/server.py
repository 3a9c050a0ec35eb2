"""The gRPC server: npc.v1.NpcService over the runtime, with health, reflection and an optional API key.

Limits (all settable on `npc-sdk serve`): messages up to 64 MiB (a 4K RGBA8 screenshot is 33 MB; clients should
still downscale to ~512 px on the long side, the encoder sees 224x224), 100,000 stored sessions, 64 turns
waiting for a decoder slot. A second Chat on a session whose turn is still running is queued, not rejected: it
starts when the earlier turn ends (done, cancelled or failed) and sees it in the history; at most 4 turns per
session wait, more get RESOURCE_EXHAUSTED. (Queueing means a cancel followed at once by a new line just works.)
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ._proto.npc.v1 import npc_pb2 as pb
from ._proto.npc.v1 import npc_pb2_grpc as pb_grpc
from .api_keys import ApiKey, match
from .errors import (
    InvalidInputError,
    LimitExceededError,
    NpcError,
    SessionBusyError,
    SessionExistsError,
    SessionNotFoundError,
    UnavailableError,
)
from .events import Done
from .generation import GenerationConfig
from .persona import Persona
from .persona_library import PersonaLibrary
from .prompt import Turn, check_text
from .runtime import OnnxNpcModel
from .scheduler import ChatJob, Scheduler
from .store import SessionStore
from .wire import (
    check_session_id,
    config_from_proto,
    event_to_proto,
    image_from_proto,
    persona_from_proto,
    persona_to_proto,
    session_to_proto,
)

log = logging.getLogger("npc_sdk.server")
SNAPSHOT_FORMAT = 1
MAX_REPLY_CHARS = 16_000  # a stored reply: 1024 tokens of text with room to spare


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"  # loopback unless told otherwise
    port: int = 50051  # 0 picks a free port (printed at start)
    data_dir: Path = field(default_factory=lambda: Path("npc-data"))  # sessions.sqlite3 lives here
    api_key: str | None = None  # when set, every RPC but health needs "authorization: Bearer <key>"
    slots: int = 8  # turns decoded at once (one cache slot each)
    max_sessions: int = 100_000
    max_queued: int = 64  # turns waiting for a slot
    max_message_mb: int = 64
    kv_budget_mb: int = 512  # host memory for the KV state of idle sessions
    grace_s: float = 5.0  # on SIGTERM: how long running turns may finish
    personas_dir: Path | None = None  # persona files (TOML, JSON, V2 cards) offered by persona_id
    tls_cert: Path | None = None  # PEM certificate chain: serve TLS instead of plaintext
    tls_key: Path | None = None  # its PEM private key
    api_keys: list[ApiKey] = field(default_factory=list)  # keys with per-key limits (--api-keys FILE)
    snapshot_key: bytes | None = None  # HMAC key for save games; default: data_dir/snapshot.key, made once
    defaults: GenerationConfig = field(default_factory=GenerationConfig)


_STATUS = (
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (SessionNotFoundError, grpc.StatusCode.NOT_FOUND),
    (SessionExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (SessionBusyError, grpc.StatusCode.FAILED_PRECONDITION),
    (LimitExceededError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (UnavailableError, grpc.StatusCode.UNAVAILABLE),
)


def status_for(exc: BaseException) -> grpc.StatusCode:
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


class NpcServicer(pb_grpc.NpcServiceServicer):
    def __init__(
        self, scheduler: Scheduler, store: SessionStore, config: ServerConfig, personas: PersonaLibrary
    ) -> None:
        self.scheduler = scheduler
        self.store = store
        self.config = config
        self.personas = personas
        self.snapshot_key = config.snapshot_key or load_snapshot_key(Path(config.data_dir))
        self.keys = [*config.api_keys, *([ApiKey("default", config.api_key)] if config.api_key else [])]
        self.turns_by_key: dict[str, int] = {}  # Chat calls streaming now, per key name

    def caller(self, context) -> ApiKey | None:
        """The API key of this call (None when the server has no keys)."""
        if not self.keys:
            return None
        return match(self.keys, dict(context.invocation_metadata() or ()).get("authorization", ""))

    def check_session_quota(self, key: ApiKey | None) -> None:
        """Scheduler thread: refuse a new session past the server's or the key's limit."""
        if self.store.count() >= self.config.max_sessions:
            raise LimitExceededError(f"the server holds its limit of {self.config.max_sessions} sessions")
        if key and key.max_sessions and self.store.count(owner=key.name) >= key.max_sessions:
            raise LimitExceededError(f"API key {key.name!r} holds its limit of {key.max_sessions} sessions")

    async def _run(self, fn):
        """Run `fn` on the scheduler thread (which owns sessions and the model) and await it."""
        return await asyncio.wrap_future(self.scheduler.call(fn))

    async def _fail(self, context: grpc.aio.ServicerContext, exc: BaseException) -> None:
        code = status_for(exc)
        if code == grpc.StatusCode.INTERNAL:
            log.exception("internal error", exc_info=exc)
        await context.abort(code, str(exc))

    async def CreateSession(self, request: pb.CreateSessionRequest, context) -> pb.Session:
        try:
            source = request.WhichOneof("persona_source")
            if source is None:
                raise InvalidInputError("persona", "give a persona (at least a name) or a persona_id")
            if source == "persona_id":
                found = self.personas.get(request.persona_id)
                if found is None:
                    raise SessionNotFoundError(f"persona_id: no persona {request.persona_id!r} is loaded")
                persona = found  # the session keeps this snapshot even if the file changes later
            else:
                persona = persona_from_proto(request.persona)
            session_id = check_session_id(request.session_id) if request.session_id else secrets.token_hex(8)

            key = self.caller(context)

            def create() -> int:
                self.check_session_quota(key)
                if self.store.exists(session_id):
                    raise SessionExistsError(f"session_id: {session_id!r} exists already")
                created = self.store.create(session_id, persona, owner=key.name if key else "")
                live = self.scheduler.session(session_id)
                self.scheduler.model.encode_role(live.persona)  # v_R computed once, here
                return created

            created = await self._run(create)
            return session_to_proto(session_id, persona, created)
        except NpcError as exc:
            await self._fail(context, exc)

    async def GetSession(self, request: pb.GetSessionRequest, context) -> pb.Session:
        try:
            stored = await self._run(lambda: self.store.load(check_session_id(request.session_id)))
            if stored is None:
                raise SessionNotFoundError(f"session_id: no session {request.session_id!r}")
            return session_to_proto(
                stored.id, stored.persona, stored.created_ms, stored.turns, stored.turn_times_ms
            )
        except NpcError as exc:
            await self._fail(context, exc)

    async def ListSessions(self, request: pb.ListSessionsRequest, context) -> pb.ListSessionsResponse:
        try:
            size = request.page_size or 100
            if not 1 <= size <= 1000:
                raise InvalidInputError("page_size", f"must be in [1, 1000], got {size}")
            try:
                after = int(request.page_token) if request.page_token else 0
            except ValueError as exc:
                raise InvalidInputError("page_token", "is not a token this server gave out") from exc
            rows = await self._run(lambda: self.store.page(after, size + 1))
            more = len(rows) > size
            rows = rows[:size]
            return pb.ListSessionsResponse(
                sessions=[session_to_proto(sid, p, c) for _, sid, p, c in rows],
                next_page_token=str(rows[-1][0]) if more else "",
            )
        except NpcError as exc:
            await self._fail(context, exc)

    async def DeleteSession(self, request: pb.DeleteSessionRequest, context) -> pb.DeleteSessionResponse:
        try:
            session_id = check_session_id(request.session_id)

            def delete() -> None:
                self.scheduler.forget(session_id)
                if not self.store.delete(session_id):
                    raise SessionNotFoundError(f"session_id: no session {session_id!r}")

            await self._run(delete)
            return pb.DeleteSessionResponse()
        except NpcError as exc:
            await self._fail(context, exc)

    async def ExportSession(self, request: pb.ExportSessionRequest, context) -> pb.SessionSnapshot:
        try:
            stored = await self._run(lambda: self.store.load(check_session_id(request.session_id)))
            if stored is None:
                raise SessionNotFoundError(f"session_id: no session {request.session_id!r}")
            snapshot = pb.SessionSnapshot(
                format_version=SNAPSHOT_FORMAT,
                session_id=stored.id,
                persona=persona_to_proto(stored.persona),
                turns=[
                    pb.Turn(user=t.user, reply=t.reply, created_unix_ms=ms)
                    for t, ms in zip(stored.turns, stored.turn_times_ms, strict=True)
                ],
                created_unix_ms=stored.created_ms,
            )
            snapshot.signature = sign_snapshot(snapshot, self.snapshot_key)
            return snapshot
        except NpcError as exc:
            await self._fail(context, exc)

    async def ImportSession(self, request: pb.SessionSnapshot, context) -> pb.Session:
        try:
            session_id, persona, turns = read_snapshot(request, self.snapshot_key)

            key = self.caller(context)

            def do_import() -> None:
                if self.store.exists(session_id):
                    raise SessionExistsError(
                        f"session_id: {session_id!r} exists already; delete it or pick another id"
                    )
                self.check_session_quota(key)
                self.store.import_session(
                    session_id, persona, request.created_unix_ms, turns, owner=key.name if key else ""
                )

            await self._run(do_import)
            return session_to_proto(session_id, persona, request.created_unix_ms, turns)
        except NpcError as exc:
            await self._fail(context, exc)

    async def ListPersonas(self, request: pb.ListPersonasRequest, context) -> pb.ListPersonasResponse:
        return pb.ListPersonasResponse(
            personas=[persona_to_proto(p) for p in self.personas.all()],
            problems=self.personas.problem_lines(),
        )

    async def GetPersona(self, request: pb.GetPersonaRequest, context) -> pb.Persona:
        persona = self.personas.get(request.id)
        if persona is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"id: no persona {request.id!r} is loaded")
        return persona_to_proto(persona)

    async def UpsertPersona(self, request: pb.Persona, context) -> pb.Persona:
        try:
            if not request.id:
                raise InvalidInputError("id", "a persona needs an id to be stored")
            persona = persona_from_proto(request)
            return persona_to_proto(await asyncio.to_thread(self.personas.upsert, persona))
        except NpcError as exc:
            await self._fail(context, exc)

    async def Chat(self, request: pb.ChatRequest, context) -> AsyncIterator[pb.ChatEvent]:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        job: ChatJob | None = None
        finished = False
        key = self.caller(context)
        counted = False
        try:
            if key and key.max_concurrent_turns:
                if self.turns_by_key.get(key.name, 0) >= key.max_concurrent_turns:
                    raise LimitExceededError(
                        f"API key {key.name!r} already streams {key.max_concurrent_turns} turns; wait for one to end"
                    )
                self.turns_by_key[key.name] = self.turns_by_key.get(key.name, 0) + 1
                counted = True
            session_id = check_session_id(request.session_id)
            text = check_text(request.text)
            config_from_proto(
                request.generation, self.config.defaults
            )  # out-of-range values fail here, early

            def config(
                persona: Persona,
            ) -> GenerationConfig:  # request values over persona over server defaults
                return config_from_proto(
                    request.generation, persona.generation_defaults(self.config.defaults)
                )

            screenshot = None
            if request.HasField("screenshot"):
                # decoding a large PNG takes tens of ms: keep it off the event loop
                screenshot = await asyncio.to_thread(image_from_proto, request.screenshot)
            job = ChatJob(
                session_id,
                text,
                screenshot,
                config,
                emit=lambda e: loop.call_soon_threadsafe(events.put_nowait, e),
            )
            await asyncio.wrap_future(self.scheduler.submit(job))
            while True:
                event = await events.get()
                if isinstance(event, BaseException):
                    finished = True
                    await self._fail(context, event)
                    return
                yield event_to_proto(event)
                if isinstance(event, Done):
                    finished = True
                    return
        except NpcError as exc:
            finished = True
            await self._fail(context, exc)
        finally:
            if counted:
                self.turns_by_key[key.name] -= 1
            if job is not None and not finished:
                job.cancelled.set()  # the client went away or its deadline passed: stop within a step


def load_snapshot_key(data_dir: Path) -> bytes:
    """The server's save-game HMAC key: data_dir/snapshot.key, created (0600) on first use."""
    path = data_dir / "snapshot.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
    return path.read_bytes()


def read_snapshot(snapshot: pb.SessionSnapshot, key: bytes) -> tuple[str, Persona, list[Turn]]:
    """Check a save game (version, signature, every field) and return what it holds; raise naming the field."""
    if snapshot.format_version != SNAPSHOT_FORMAT:
        raise InvalidInputError(
            "format_version", f"is {snapshot.format_version}; this server reads version {SNAPSHOT_FORMAT}"
        )
    if not hmac.compare_digest(snapshot.signature, sign_snapshot(snapshot, key)):
        raise InvalidInputError(
            "signature", "does not match: the save game was changed, or exported by a server with another key"
        )
    session_id = check_session_id(snapshot.session_id)
    persona = persona_from_proto(snapshot.persona)
    turns = []
    for i, t in enumerate(snapshot.turns):
        check_text(t.user, f"turns[{i}].user")
        if len(t.reply) > MAX_REPLY_CHARS:
            raise InvalidInputError(
                f"turns[{i}].reply", f"is {len(t.reply)} characters, over {MAX_REPLY_CHARS}"
            )
        turns.append(Turn(t.user, t.reply))
    return session_id, persona, turns


def sign_snapshot(snapshot: pb.SessionSnapshot, key: bytes) -> bytes:
    unsigned = pb.SessionSnapshot()
    unsigned.CopyFrom(snapshot)
    unsigned.ClearField("signature")
    return hmac.new(key, unsigned.SerializeToString(deterministic=True), hashlib.sha256).digest()


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Every RPC but health needs `authorization: Bearer <key>`; compared in constant time."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self.keys = keys

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or details.method.startswith("/grpc.health.v1.Health/"):
            return handler
        if match(self.keys, dict(details.invocation_metadata or ()).get("authorization", "")):
            return handler
        return _denied(handler)


class DecodeGuard(grpc.aio.ServerInterceptor):
    """Requests that are not valid protobuf (bad UTF-8 in a string, truncated bytes) get INVALID_ARGUMENT.

    gRPC's own handling of a failing deserializer answers UNKNOWN; parsing inside the handler lets us say what
    was wrong with the right status.
    """

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        parse, method = handler.request_deserializer, details.method

        async def parsed(raw: bytes, context):
            try:
                return parse(raw)
            except DecodeError as exc:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"request: not a valid {method} message ({exc})"
                )

        if handler.unary_unary:
            inner = handler.unary_unary

            async def unary(raw, context):
                return await inner(await parsed(raw, context), context)

            return grpc.unary_unary_rpc_method_handler(unary, response_serializer=handler.response_serializer)
        inner_stream = handler.unary_stream

        async def streaming(raw, context):
            async for item in inner_stream(await parsed(raw, context), context):
                yield item

        return grpc.unary_stream_rpc_method_handler(
            streaming, response_serializer=handler.response_serializer
        )


def _denied(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    message = "missing or wrong API key: send metadata 'authorization: Bearer <key>'"

    async def unary(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def streaming(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover  (makes this an async generator)

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary, **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming, **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary, **kwargs)
    return grpc.stream_stream_rpc_method_handler(streaming, **kwargs)


def _warm_up(model: OnnxNpcModel) -> None:
    """One tiny turn through every graph: onnxruntime's first runs allocate and plan (~0.5 s), not a player's."""
    from .demo import DEMO_PERSONA, scene_path

    model.reply(
        "Hello.",
        persona=DEMO_PERSONA,
        screenshot=scene_path("meadow_slimes.png"),
        config=GenerationConfig(max_tokens=2, temperature=0.0),
    )


async def serve(model_path: Path, config: ServerConfig, *, started=None) -> None:
    """Run until SIGTERM/SIGINT; running turns get `grace_s` to finish, then are cancelled unstored."""
    model = OnnxNpcModel.load(model_path, slots=config.slots)
    _warm_up(model)
    store = SessionStore(Path(config.data_dir) / "sessions.sqlite3")
    scheduler = Scheduler(
        model, store, kv_budget_bytes=config.kv_budget_mb << 20, max_queued=config.max_queued
    )
    scheduler.start()
    keys = list(config.api_keys)
    if config.api_key:
        keys.append(ApiKey("default", config.api_key))
    size = config.max_message_mb << 20
    server = grpc.aio.server(
        interceptors=([ApiKeyInterceptor(keys)] if keys else []) + [DecodeGuard()],
        options=[("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size)],
    )
    personas = PersonaLibrary(Path(config.personas_dir) if config.personas_dir else None)
    personas.start()
    pb_grpc.add_NpcServiceServicer_to_server(NpcServicer(scheduler, store, config, personas), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    service_name = pb.DESCRIPTOR.services_by_name["NpcService"].full_name
    reflection.enable_server_reflection((service_name, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"{config.host}:{config.port}"
    if config.tls_cert or config.tls_key:
        if not (config.tls_cert and config.tls_key):
            raise InvalidInputError("tls", "give both --tls-cert and --tls-key")
        creds = grpc.ssl_server_credentials(
            [(Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())]
        )
        port = server.add_secure_port(address, creds)
    else:
        port = server.add_insecure_port(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        await health_servicer.set(service_name, health_pb2.HealthCheckResponse.SERVING)
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        print(f"npc-sdk serving {model.describe()} on {config.host}:{port}", flush=True)
        if started:
            started(port)
        await stop.wait()
        print("npc-sdk: shutting down", flush=True)
        await health_servicer.enter_graceful_shutdown()
    finally:
        await server.stop(config.grace_s)
        personas.stop()
        scheduler.stop()
        store.close()
        print("npc-sdk: stopped; store closed", flush=True)
