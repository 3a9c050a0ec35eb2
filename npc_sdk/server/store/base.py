"""The session store's contract (`SessionStore`), the session it hands back, and the row helpers both backends share.

A turn is committed before the server sends its done event, so a crash never loses a finished turn; a turn that
never finished is never written. Prefix vectors are stored with the turn so the KV state rebuilds exactly.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ...personas.persona import Persona
from ...personas.prompt import Turn
from ...runtime.memory import Memory
from ..scene_rules import SceneState


@dataclass
class StoredSession:
    id: str
    persona: Persona  # the snapshot the session was created with
    created_ms: int
    turns: list[Turn]
    turn_times_ms: list[int]  # when each turn was committed, one per turn
    player_id: str = ""  # who plays ('' when the game did not say)
    owner: str = ""  # the API key name that created it ('' without keys)
    # each turn's sentence vector (runtime/memory.py) where it was stored with it, else None
    turn_vectors: list[np.ndarray | None] = field(default_factory=list)


class SessionStore(Protocol):
    """What the server asks of a store; SQLite (store/sqlite.py) and PostgreSQL (store/postgres.py) implement it.

    Every method may be called from any thread: the servicer's store thread and the scheduler's decode thread.
    """

    def close(self) -> None: ...

    def create(
        self,
        session_id: str,
        persona: Persona,
        created_ms: int | None = None,
        owner: str = "",
        player_id: str = "",
    ) -> int:
        """Store a new session with no turns; returns its creation time (ms)."""
        ...

    def exists(self, session_id: str) -> bool: ...

    def owner_of(self, session_id: str) -> str | None:
        """The API key name that owns the session ('' without keys), or None when there is no such session."""
        ...

    def version(self, session_id: str) -> tuple[int, int] | None:
        """(created_ms, turns stored): what a live copy must match to be current; None for no such session."""
        ...

    def count(self, owner: str | None = None) -> int: ...

    def load(self, session_id: str) -> StoredSession | None: ...

    def page(
        self, after_seq: int, limit: int, owner: str | None = None
    ) -> list[tuple[int, str, Persona, int]]:
        """(seq, id, persona, created_ms) of up to `limit` sessions created after `after_seq` (only `owner`'s)."""
        ...

    def append_turn(
        self, session_id: str, index: int, turn: Turn, turn_id: str = "", vector: np.ndarray | None = None
    ) -> None:
        """Commit one finished turn with its sentence vector (durable when this returns). A turn_id is unique within
        its session."""
        ...

    def find_turn(self, session_id: str, turn_id: str) -> tuple[str, str] | None:
        """(player line, reply) of the session's turn with this turn_id, if it was committed."""
        ...

    def import_session(
        self,
        session_id: str,
        persona: Persona,
        created_ms: int,
        turns: list[Turn],
        owner: str = "",
        player_id: str = "",
        memories: Sequence[tuple[Memory, np.ndarray | None]] = (),
    ) -> None:
        """Store a session with its turns, and the memories that travel with it, in one transaction (a save game
        coming back). A memory whose id is stored already is left as it is."""
        ...

    def delete(self, session_id: str) -> bool:
        """Remove the session and its turns; False when there was no such session."""
        ...

    # ---- long-term memory (store/memories.py) -------------------------------------------------------------
    def add_memories(
        self, memories: Sequence[tuple[Memory, np.ndarray | None]], owner: str = ""
    ) -> list[Memory]:
        """Store memories with their vectors in one transaction; returns them with their ids and times."""
        ...

    def list_memories(
        self, npc: str = "", group: str = "", player_id: str = "", owner: str | None = None, limit: int = 100
    ) -> list[Memory]:
        """Memories matching every filter given (empty ones match all; owner None: every owner's), newest first."""
        ...

    def recall_memories(
        self, npc: str, group: str, player_id: str, owner: str
    ) -> list[tuple[Memory, np.ndarray | None]]:
        """What one NPC may recall talking to one player: its own memories and its group's, about nobody or about
        this player, with their vectors, oldest first."""
        ...

    def memory_stamp(self, npc: str, group: str, player_id: str, owner: str) -> tuple[int, int]:
        """(count, newest seq) of what recall_memories returns: a cached copy is current while this is equal."""
        ...

    def set_memory_vectors(self, vectors: Sequence[tuple[str, np.ndarray]]) -> None:
        """Store the vectors of memories that came without one (by id)."""
        ...

    def delete_memory(self, memory_id: str, owner: str | None = None) -> bool: ...

    def player_sessions(self, player_id: str, owner: str | None = None) -> list[str]:
        """The ids of the player's sessions."""
        ...

    def forget_player(self, player_id: str, owner: str | None = None) -> tuple[int, int]:
        """Delete the player's memories and sessions (with their turns) in one transaction: (memories, sessions)."""
        ...

    # ---- scenes (store/scenes.py) -------------------------------------------------------------------------
    def create_scene(self, scene: SceneState) -> None:
        """Store a new scene; SessionExistsError when its id is taken."""
        ...

    def load_scene(self, scene_id: str) -> SceneState | None: ...

    def save_scene(self, scene: SceneState) -> None:
        """Store what the scene's NPCs heard and who spoke last (after every line)."""
        ...

    def delete_scene(self, scene_id: str) -> bool: ...

    def integrity_check(self) -> str:
        """'ok', or what is wrong."""
        ...


def now_ms() -> int:
    return int(time.time() * 1000)


def turns_from_rows(rows: Sequence[Sequence[Any]]) -> tuple[list[Turn], list[int]]:
    """(turns, their times) from (user, reply, prefix, prefix_rows, context, created_ms) rows of either backend."""
    turns = [
        Turn(u, r, np.frombuffer(p, dtype=np.float32).reshape(n, -1).copy() if p is not None else None, ctx)
        for u, r, p, n, ctx, _ in rows
    ]
    return turns, [int(row[5]) for row in rows]


def vectors_from_rows(rows: Sequence[Sequence[Any]], column: int) -> list[np.ndarray | None]:
    """Each turn's stored sentence vector (float32 bytes in `column`), None where it has none."""
    return [None if r[column] is None else np.frombuffer(bytes(r[column]), dtype=np.float32).copy() for r in rows]


def vector_blob(vector: np.ndarray | None) -> bytes | None:
    return None if vector is None else np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def prefix_blob(turn: Turn) -> tuple[bytes | None, int]:
    """A turn's prefix vectors as stored: (float32 bytes or None, rows)."""
    if turn.prefix is None:
        return None, 0
    return np.ascontiguousarray(turn.prefix, dtype=np.float32).tobytes(), int(turn.prefix.shape[0])
