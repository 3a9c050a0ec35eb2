"""NpcServicer: the npc.v1.NpcService methods over a turn backend, the session store and the persona library.

Limits (all settable on `npc-sdk serve`): messages up to 64 MiB (a 4K RGBA8 screenshot is 33 MB; clients should
still scale it to fit 448x256, the canvas the encoder letterboxes every picture into: 448x252 for 16:9),
100,000 stored sessions, 64 turns waiting for a decoder slot. A second Chat on a session whose turn is still
running is queued, not rejected: it starts when the earlier turn ends (done, cancelled or failed) and sees it in
the history; at most 4 turns per session wait, more get RESOURCE_EXHAUSTED. (Queueing means a cancel followed at
once by a new line just works.)
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from .._proto.npc.v1 import npc_pb2 as pb
from .._proto.npc.v1 import npc_pb2_grpc as pb_grpc
from ..errors import (
    InvalidInputError,
    LimitExceededError,
    NpcError,
    SessionBusyError,
    SessionExistsError,
    SessionNotFoundError,
    UnavailableError,
)
from ..personas.library import PersonaLibrary
from ..wire import (
    check_player_id,
    check_session_id,
    event_to_proto,
    memory_from_proto,
    memory_to_proto,
    persona_from_proto,
    persona_to_proto,
    session_to_proto,
)
from .api_keys import ApiKey, match
from .backend import ServedBy, TurnBackend, job_from_request
from .config import ServerConfig
from .memory_keeper import with_group_memories
from .memory_rpcs import MemoryMethods
from .pump import EventPump
from .replay import TurnClaims
from .scene_rpcs import SceneMethods
from .snapshots import SNAPSHOT_FORMAT, load_snapshot_key, read_snapshot, sign_snapshot
from .store import SessionStore, StoredSession

log = logging.getLogger("npc_sdk.server")
MAX_EXPORTED = 10_000  # memories of the player a save game carries at most (newest kept)


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


class NpcServicer(MemoryMethods, SceneMethods, pb_grpc.NpcServiceServicer):
    def __init__(
        self, backend: TurnBackend, store: SessionStore, config: ServerConfig, personas: PersonaLibrary
    ) -> None:
        self.backend = backend  # the local scheduler or cluster mode's replicas: asked the same way
        self.store = store
        self.config = config
        self.personas = personas
        self.snapshot_key = config.snapshot_key or load_snapshot_key(Path(config.data_dir))
        self.keys = [*config.api_keys, *([ApiKey("default", config.api_key)] if config.api_key else [])]
        self.turns_by_key: dict[str, int] = {}  # Chat calls streaming now, per key name
        self.claims = TurnClaims(backend, store)  # turn_ids replayed, or running in a Chat of this server
        self.on_shutdown: Callable[[], None] | None = None  # serve() sets it: starts the graceful stop

    def caller(self, context) -> ApiKey | None:
        """The API key of this call (None when the server has no keys)."""
        if not self.keys:
            return None
        return match(self.keys, dict(context.invocation_metadata() or ()).get("authorization", ""))

    def check_owner(self, session_id: str, key: ApiKey | None) -> None:
        """Backend thread: a session belongs to the key that created it; to any other key it does not exist.

        The same NOT_FOUND message as for a missing session, so a key cannot probe for other tenants' ids.
        """
        owner = self.store.owner_of(session_id)
        if owner is None or (key is not None and owner != key.name):
            raise SessionNotFoundError(f"session_id: no session {session_id!r}")

    async def _load_owned(self, session_id: str, key: ApiKey | None) -> StoredSession:
        """The stored session, if it exists and belongs to `key` (NOT_FOUND otherwise)."""

        def load() -> StoredSession | None:
            self.check_owner(session_id, key)
            return self.store.load(session_id)

        stored = await self._run(load)
        if stored is None:
            raise SessionNotFoundError(f"session_id: no session {session_id!r}")
        return stored

    def check_session_quota(self, key: ApiKey | None) -> None:
        """Backend thread: refuse a new session past the server's or the key's limit."""
        if self.store.count() >= self.config.max_sessions:
            raise LimitExceededError(f"the server holds its limit of {self.config.max_sessions} sessions")
        if key and key.max_sessions and self.store.count(owner=key.name) >= key.max_sessions:
            raise LimitExceededError(f"API key {key.name!r} holds its limit of {key.max_sessions} sessions")

    async def _run(self, fn):
        """Run `fn` on the backend's thread (which owns the sessions) and await it."""
        return await asyncio.wrap_future(self.backend.call(fn))

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
            persona = with_group_memories(persona, self.personas.all())
            session_id = check_session_id(request.session_id) if request.session_id else secrets.token_hex(8)
            player_id = check_player_id(request.player_id)

            key = self.caller(context)

            def create() -> int:
                self.check_session_quota(key)
                if self.store.exists(session_id):
                    raise SessionExistsError(f"session_id: {session_id!r} exists already")
                created = self.store.create(
                    session_id, persona, owner=key.name if key else "", player_id=player_id
                )
                self.backend.prepare(session_id)
                return created

            created = await self._run(create)
            return session_to_proto(session_id, persona, created, player_id=player_id)
        except NpcError as exc:
            await self._fail(context, exc)

    async def GetSession(self, request: pb.GetSessionRequest, context) -> pb.Session:
        try:
            stored = await self._load_owned(check_session_id(request.session_id), self.caller(context))
            return session_to_proto(
                stored.id,
                stored.persona,
                stored.created_ms,
                stored.turns,
                stored.turn_times_ms,
                stored.player_id,
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
            key = self.caller(context)
            rows = await self._run(lambda: self.store.page(after, size + 1, owner=key.name if key else None))
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
            key = self.caller(context)

            def delete() -> None:
                self.check_owner(session_id, key)
                self.backend.forget(session_id)
                if not self.store.delete(session_id):
                    raise SessionNotFoundError(f"session_id: no session {session_id!r}")

            await self._run(delete)
            return pb.DeleteSessionResponse()
        except NpcError as exc:
            await self._fail(context, exc)

    async def Shutdown(self, request: pb.ShutdownRequest, context) -> pb.ShutdownResponse:
        # Only a server with keys takes it: on a keyless server any local process could stop a game's NPCs.
        if not self.keys or self.on_shutdown is None:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                "Shutdown needs a server started with an API key (--api-key or NPC_SDK_API_KEY); stop it with SIGTERM",
            )
        in_flight = sum(self.turns_by_key.values())
        log.info("Shutdown RPC: stopping with %d turn(s) in flight", in_flight)
        self.on_shutdown()
        return pb.ShutdownResponse(turns_in_flight=in_flight)

    async def ExportSession(self, request: pb.ExportSessionRequest, context) -> pb.SessionSnapshot:
        try:
            stored = await self._load_owned(check_session_id(request.session_id), self.caller(context))
            snapshot = pb.SessionSnapshot(
                format_version=SNAPSHOT_FORMAT,
                session_id=stored.id,
                persona=persona_to_proto(stored.persona),
                turns=[
                    pb.Turn(user=t.user, reply=t.reply, created_unix_ms=ms)
                    for t, ms in zip(stored.turns, stored.turn_times_ms, strict=True)
                ],
                created_unix_ms=stored.created_ms,
                player_id=stored.player_id,
            )
            if stored.player_id:  # this NPC's memories of the player travel with the save
                kept = await self._run(
                    lambda: self.store.list_memories(
                        npc=stored.persona.name,
                        player_id=stored.player_id,
                        owner=stored.owner,
                        limit=MAX_EXPORTED,
                    )
                )
                snapshot.memories.extend(memory_to_proto(m) for m in reversed(kept))
            snapshot.signature = sign_snapshot(snapshot, self.snapshot_key)
            return snapshot
        except NpcError as exc:
            await self._fail(context, exc)

    async def ImportSession(self, request: pb.SessionSnapshot, context) -> pb.Session:
        try:
            session_id, persona, turns = read_snapshot(request, self.snapshot_key)
            player_id = check_player_id(request.player_id)
            memories = [
                memory_from_proto(m, f"memories[{i}]", m.source or "player")
                for i, m in enumerate(request.memories)
            ]
            if any(m.player_id != player_id or m.npc != persona.name for m in memories):
                raise InvalidInputError("memories", "hold only the session's NPC's memories of its player_id")
            key = self.caller(context)

            def do_import() -> None:
                if self.store.exists(session_id):
                    raise SessionExistsError(
                        f"session_id: {session_id!r} exists already; delete it or pick another id"
                    )
                self.check_session_quota(key)
                self.store.import_session(
                    session_id,
                    persona,
                    request.created_unix_ms,
                    turns,
                    owner=key.name if key else "",
                    player_id=player_id,
                    memories=[(m, None) for m in memories],  # vectors are made on first recall
                )

            await self._run(do_import)
            return session_to_proto(session_id, persona, request.created_unix_ms, turns, player_id=player_id)
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

    @contextmanager
    def _counted(self, key: ApiKey | None) -> Iterator[None]:
        """A Chat streaming for `key`, counted against its max_concurrent_turns while it lasts."""
        if key is None or not key.max_concurrent_turns:
            yield
            return
        if self.turns_by_key.get(key.name, 0) >= key.max_concurrent_turns:
            raise LimitExceededError(
                f"API key {key.name!r} already streams {key.max_concurrent_turns} turns; wait for one to end"
            )
        self.turns_by_key[key.name] = self.turns_by_key.get(key.name, 0) + 1
        try:
            yield
        finally:
            self.turns_by_key[key.name] -= 1

    async def Chat(self, request: pb.ChatRequest, context) -> AsyncIterator[pb.ChatEvent]:
        key = self.caller(context)
        claimed: tuple[str, str] | None = None
        try:
            # leaving the pump before the turn ended (the client went away, its deadline passed) stops the turn
            with self._counted(key):
                async with EventPump() as pump:
                    job = job_from_request(request, self.config.defaults, pump.emit, pump.cancelled)
                    if key is not None or job.turn_id:  # without keys the backend finds a missing session
                        await self._run(lambda: self.check_owner(job.session_id, key))
                    if job.turn_id:
                        replay = await self.claims.claim(job.session_id, job.turn_id, job.text)
                        if replay is not None:
                            for stored in replay:
                                yield event_to_proto(stored)
                            return
                        claimed = (job.session_id, job.turn_id)
                    await self.backend.start_turn(request, job)
                    async for event in pump.events():
                        if isinstance(event, BaseException):
                            await self._fail(context, event)
                            return
                        if isinstance(event, ServedBy):  # cluster mode: which replica holds this session
                            context.set_trailing_metadata((("npc-replica", event.replica),))
                            continue
                        yield event_to_proto(event)
        except NpcError as exc:
            await self._fail(context, exc)
        finally:
            if claimed is not None:
                self.claims.release(*claimed)  # a retry waiting on this turn looks again
