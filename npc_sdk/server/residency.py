"""Residency: which sessions a scheduler keeps live, and where each one's KV state is (a slot, host memory, nowhere).

A session's KV state lives in a cache slot while it can; when a turn needs a slot and none is free, the least
recently used idle session is parked (its KV copied to host memory). Parked KV beyond the budget is dropped,
oldest first, and rebuilt from the stored history on that session's next turn. Scheduler thread only.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ..errors import SessionBusyError, SessionNotFoundError
from ..personas.persona import Persona
from ..runtime.conversation import Conversation
from ..runtime.onnx_model import OnnxNpcModel
from .memory_keeper import MemoryKeeper, SessionMemory
from .store import SessionStore


@dataclass
class LiveSession:
    id: str
    persona: Persona
    created_ms: int
    conversation: Conversation
    memory: SessionMemory
    queued: int = 0  # turns waiting or running for this session
    running: bool = False  # one of them is decoding now

    @property
    def busy(self) -> bool:
        return self.queued > 0

    def turn_ended(self) -> None:
        self.running = False
        self.queued -= 1


class Residency:
    def __init__(
        self, model: OnnxNpcModel, store: SessionStore, *, kv_budget_bytes: int, max_live: int
    ) -> None:
        self.model = model
        self.store = store
        self.kv_budget_bytes = kv_budget_bytes  # parked (host-memory) KV state of idle sessions, in total
        self.max_live = max_live  # sessions kept loaded; the rest reload from the store on use
        self.live: OrderedDict[str, LiveSession] = OrderedDict()  # LRU order: least recently used first
        self.memories = MemoryKeeper(model, store)

    def session(self, session_id: str) -> LiveSession:
        """The live session, loaded from the store if it is not live; now the most recently used."""
        live = self.live.get(session_id)
        if live is None:
            stored = self.store.load(session_id)
            if stored is None:
                raise SessionNotFoundError(f"session_id: no session {session_id!r}")
            memory = self.memories.attach(stored.persona, stored.player_id, stored.owner)
            conversation = Conversation(
                self.model, stored.persona, self.model.usable_history(stored.turns), known=memory.known
            )
            assert conversation.recall is not None
            conversation.recall.preload(conversation.history, stored.turn_vectors)
            live = LiveSession(stored.id, stored.persona, stored.created_ms, conversation, memory)
            self.live[session_id] = live
            self._trim_live()
        self.live.move_to_end(session_id)
        return live

    def forget(self, session_id: str) -> None:
        """Drop a session's live state (after delete); refused while it has a turn in flight."""
        live = self.live.get(session_id)
        if live is not None:
            if live.busy:
                raise SessionBusyError(f"session_id: {session_id!r} has a turn in flight")
            live.conversation.close()
            del self.live[session_id]

    def refresh(self, session_id: str) -> None:
        """Drop an idle live copy that no longer matches the store (another replica added turns, or the session
        was deleted and made again); the next use reloads it."""
        live = self.live.get(session_id)
        if live is None or live.busy:
            return
        if self.store.version(session_id) != (live.created_ms, len(live.conversation.history)):
            live.conversation.close()
            del self.live[session_id]

    def make_room(self, conv: Conversation) -> bool:
        """Ensure `conv` can attach to a slot, parking the least recently used idle session if needed."""
        if conv.slot is not None or self.model.free_slots:
            return True
        for live in self.live.values():  # least recently used first
            if not live.busy and live.conversation.slot is not None:
                live.conversation.park()
                self._enforce_kv_budget()
                return True
        return False  # every slot is decoding

    def spare_slots(self, n: int) -> None:
        """Park least recently used idle sessions until `n` slots are free for a turn's best-of-N candidates, as
        far as idle sessions allow: with every slot held by NPCs that talked earlier, a turn would otherwise get
        no candidates at all. A parked session's KV comes back from host memory when it talks again."""
        for live in self.live.values():  # least recently used first
            if self.model.free_slots >= n:
                break
            if not live.busy and live.conversation.slot is not None:
                live.conversation.park()
        self._enforce_kv_budget()

    @property
    def kv_parked_bytes(self) -> int:
        return sum(s.conversation.kv_bytes for s in self.live.values())

    def _trim_live(self) -> None:
        for sid in list(self.live):
            if len(self.live) <= self.max_live:
                break
            if not self.live[sid].busy:
                self.live.pop(sid).conversation.close()

    def _enforce_kv_budget(self) -> None:
        total = self.kv_parked_bytes
        for live in self.live.values():
            if total <= self.kv_budget_bytes:
                break
            if live.conversation.parked is not None:
                total -= live.conversation.kv_bytes
                live.conversation.drop_kv()
