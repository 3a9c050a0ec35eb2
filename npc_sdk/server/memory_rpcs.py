"""The long-term memory methods of npc.v1.NpcService (AddMemory, ListMemories, DeleteMemory, ForgetPlayer).

A mixin of NpcServicer (service.py): the same store, API-key scoping and error mapping. With keys, a key sees,
deletes and forgets only what it added or its sessions kept; without keys everything is one studio's.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .._proto.npc.v1 import npc_pb2 as pb
from ..errors import InvalidInputError, NpcError, SessionBusyError, SessionNotFoundError
from ..wire import check_player_id, memory_from_proto, memory_to_proto
from .api_keys import ApiKey
from .backend import TurnBackend
from .store import SessionStore

log = logging.getLogger("npc_sdk.server")
MAX_LISTED = 1000


class MemoryMethods:
    backend: TurnBackend
    store: SessionStore

    if TYPE_CHECKING:  # NpcServicer's

        def caller(self, context) -> ApiKey | None: ...
        async def _run(self, fn): ...
        async def _fail(self, context, exc: BaseException) -> None: ...

    async def AddMemory(self, request: pb.Memory, context) -> pb.Memory:
        try:
            memory = memory_from_proto(request, "memory", source="game")
            key = self.caller(context)
            stored = await self._run(
                lambda: self.store.add_memories([(memory, None)], owner=key.name if key else "")
            )
            return memory_to_proto(stored[0])
        except NpcError as exc:
            await self._fail(context, exc)

    async def ListMemories(self, request: pb.ListMemoriesRequest, context) -> pb.ListMemoriesResponse:
        try:
            limit = request.limit or 100
            if not 1 <= limit <= MAX_LISTED:
                raise InvalidInputError("limit", f"must be in [1, {MAX_LISTED}], got {limit}")
            check_player_id(request.player_id)
            key = self.caller(context)
            found = await self._run(
                lambda: self.store.list_memories(
                    request.npc, request.group, request.player_id, key.name if key else None, limit
                )
            )
            return pb.ListMemoriesResponse(memories=[memory_to_proto(m) for m in found])
        except NpcError as exc:
            await self._fail(context, exc)

    async def DeleteMemory(self, request: pb.DeleteMemoryRequest, context) -> pb.DeleteMemoryResponse:
        try:
            if not request.id:
                raise InvalidInputError("id", "is empty")
            key = self.caller(context)
            if not await self._run(lambda: self.store.delete_memory(request.id, key.name if key else None)):
                raise SessionNotFoundError(f"id: no memory {request.id!r}")
            return pb.DeleteMemoryResponse()
        except NpcError as exc:
            await self._fail(context, exc)

    async def ForgetPlayer(self, request: pb.ForgetPlayerRequest, context) -> pb.ForgetPlayerResponse:
        try:
            player_id = check_player_id(request.player_id, required=True)
            key = self.caller(context)
            owner = key.name if key else None

            def forget() -> tuple[int, int]:
                for session_id in self.store.player_sessions(player_id, owner):
                    try:
                        self.backend.forget(session_id)
                    except SessionBusyError as exc:
                        raise SessionBusyError(
                            f"player_id: session {session_id!r} of {player_id!r} has a turn in flight; "
                            "retry when it is done"
                        ) from exc
                return self.store.forget_player(player_id, owner)

            memories, sessions = await self._run(forget)
            log.info("ForgetPlayer: %d memories and %d sessions deleted", memories, sessions)
            return pb.ForgetPlayerResponse(memories_deleted=memories, sessions_deleted=sessions)
        except NpcError as exc:
            await self._fail(context, exc)
