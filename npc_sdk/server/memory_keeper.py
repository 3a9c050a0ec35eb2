"""MemoryKeeper: a live session's long-term memories kept current, and the player's facts stored after each turn.

Before a turn, the session's conversation gets what its NPC may recall: the memories seeded in its persona snapshot
and the store's for this NPC, its memory group and this player (store/memories.py). The store is asked only for a
(count, newest) stamp each turn; the rows and their vectors are read again only when it changed (an AddMemory, a
fact from another session, a DeleteMemory), so recall stays a matrix-vector product at 10,000 memories.

After a turn is committed, the sentences in which the player said something lasting about themselves
(runtime/player_facts.py) are stored for this NPC and player, with their vectors: the next session with the same
player_id recalls them. Without a player_id nothing is kept beyond the session's own history. Scheduler thread only.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..personas.persona import Persona
from ..runtime.memory import KnownMemories, Memory
from ..runtime.onnx_model import OnnxNpcModel
from ..runtime.player_facts import player_facts
from .store import SessionStore, SqliteSessionStore

log = logging.getLogger("npc_sdk.server")


def seeded(persona: Persona) -> list[Memory]:
    """The memories written in a persona (shared ones belong to its memory group)."""
    return [
        Memory(m.text, persona.name, persona.memory_group if m.shared else "", "", "persona")
        for m in persona.memories
    ]


def with_group_memories(persona: Persona, library: Sequence[Persona]) -> Persona:
    """`persona` with the shared memories its memory group's other personas seed ("the whole village knows"), so
    a session's persona snapshot holds all it starts out knowing."""
    if not persona.memory_group:
        return persona
    have = {m.text for m in persona.memories}
    shared = [
        m
        for other in library
        if other.memory_group == persona.memory_group and other.name != persona.name
        for m in other.memories
        if m.shared and m.text not in have
    ]
    return replace(persona, memories=[*persona.memories, *dict.fromkeys(shared)]) if shared else persona


@dataclass
class SessionMemory:
    """One live session's view of long-term memory."""

    player_id: str
    owner: str
    known: KnownMemories
    stamp: tuple[int, int] | None = None  # the store's stamp when `known` was last filled
    seeds: list[Memory] = field(default_factory=list)


class MemoryKeeper:
    def __init__(self, model: OnnxNpcModel, store: SessionStore) -> None:
        self.model = model
        self.store = store
        self._vectors: dict[str, np.ndarray] = {}  # seeded texts' vectors, shared by every session

    def attach(self, persona: Persona, player_id: str, owner: str) -> SessionMemory:
        return SessionMemory(
            player_id, owner, KnownMemories(self.model.sentence_vectors, self._vectors), seeds=seeded(persona)
        )

    def refresh(self, persona: Persona, memory: SessionMemory) -> KnownMemories:
        """The session's memories, read again from the store only when they changed there."""
        if persona.memory_budget_tokens <= 0:
            return memory.known
        scope = (persona.name, persona.memory_group, memory.player_id, memory.owner)
        stamp = self.store.memory_stamp(*scope)
        if stamp != memory.stamp:
            stored = self.store.recall_memories(*scope) if stamp[0] else []
            stored = self._with_vectors(stored)
            memory.known.set(
                [*memory.seeds, *(m for m, _ in stored)],
                [*([None] * len(memory.seeds)), *(v for _, v in stored)],
            )
            memory.stamp = stamp
        return memory.known

    def _with_vectors(
        self, stored: list[tuple[Memory, np.ndarray | None]]
    ) -> list[tuple[Memory, np.ndarray | None]]:
        """Memories added over the API or imported come without vectors: made here once, and stored."""
        missing = [m for m, v in stored if v is None]
        if not missing:
            return stored
        made = np.asarray(self.model.sentence_vectors([m.text for m in missing]), dtype=np.float32)
        self.store.set_memory_vectors([(m.id, v) for m, v in zip(missing, made, strict=True)])
        by_id = {m.id: v for m, v in zip(missing, made, strict=True)}
        return [(m, by_id[m.id] if v is None else v) for m, v in stored]

    def keep_facts(self, persona: Persona, memory: SessionMemory, line: str) -> list[Memory]:
        """Store what the player said about themselves in this line (nothing without a player_id)."""
        if not memory.player_id:
            return []
        facts = player_facts(line)
        if not facts:
            return []
        vectors = np.asarray(self.model.sentence_vectors(facts), dtype=np.float32)
        new = [
            (Memory(f, persona.name, "", memory.player_id, "player"), v)
            for f, v in zip(facts, vectors, strict=True)
        ]
        return self.store.add_memories(new, owner=memory.owner)


def refresh_cost_ms(memories: int = 10_000, turns: int = 200, dim: int = 384) -> float:
    """Median cost a turn pays for long-term memory with `memories` stored for its NPC and player: the store's
    stamp query (nothing changed) and the recall (vectors made up: the cost does not depend on them)."""
    persona = Persona(name="Brakka")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteSessionStore(Path(tmp) / "bench.sqlite3")
        try:
            store.add_memories(
                [
                    (Memory(f"fact {i}", "Brakka", player_id="p", source="player"), rng.standard_normal(dim))
                    for i in range(memories)
                ]
            )
            keeper = MemoryKeeper(_RandomVectors(dim), store)  # type: ignore[arg-type]
            session = keeper.attach(persona, "p", "")
            keeper.refresh(persona, session)  # the first turn reads them all
            times = []
            for _ in range(turns):
                query = rng.standard_normal(dim).astype(np.float32)
                started = time.perf_counter()
                known = keeper.refresh(persona, session)
                known.recall(query, 200, len)
                times.append((time.perf_counter() - started) * 1000)
        finally:
            store.close()
    return statistics.median(times)


class _RandomVectors:
    """Stands in for the model where only the vectors' shape matters."""

    def __init__(self, dim: int) -> None:
        self.rng = np.random.default_rng(1)
        self.dim = dim

    def sentence_vectors(self, texts: Sequence[str]) -> np.ndarray:
        return self.rng.standard_normal((len(texts), self.dim)).astype(np.float32)
