"""SqliteSessionStore: sessions and their finished turns in an embedded SQLite database (WAL, synchronous=FULL).

The default backend; `open_store` (store/__init__.py) picks PostgreSQL (store/postgres.py) for a postgresql://
URL. Both implement `SessionStore` (store/base.py), and the store tests run on both.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import SessionExistsError
from ...personas.persona import Persona
from ...personas.prompt import Turn
from ...runtime.memory import Memory
from ..scene_rules import SceneState
from .base import StoredSession, now_ms, prefix_blob, turns_from_rows, vector_blob, vectors_from_rows
from .memories import (
    INSERT_MEMORY,
    RECALL,
    SET_VECTOR,
    SQLITE_MEMORIES,
    STAMP,
    insert_rows,
    list_query,
    memory_of,
    owned,
    recalled,
    scope_args,
    stamp_of,
)
from .scenes import (
    DELETE_SCENE,
    INSERT_SCENE,
    SELECT_SCENE,
    SQLITE_SCENES,
    UPDATE_SCENE,
    insert_args,
    scene_of,
    state_json,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,      -- creation order, for paging
    id TEXT UNIQUE NOT NULL,
    persona TEXT NOT NULL,                      -- JSON of the persona snapshot the session was created with
    created_ms INTEGER NOT NULL,
    owner TEXT NOT NULL DEFAULT ''              -- the API key name that created it ('' without keys)
);
CREATE TABLE IF NOT EXISTS turns (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    user TEXT NOT NULL,
    reply TEXT NOT NULL,
    prefix BLOB,                                -- float32 [K, hidden] fusion vectors, or NULL
    prefix_rows INTEGER NOT NULL DEFAULT 0,
    context TEXT NOT NULL DEFAULT '',           -- lore / instructions shown with the line
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (session_id, idx)
);
"""


class SqliteSessionStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()  # one connection shared by the RPC loop and the decode thread
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        if "owner" not in {row[1] for row in self._db.execute("PRAGMA table_info(sessions)")}:
            self._db.execute("ALTER TABLE sessions ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(turns)")}
        if "context" not in columns:  # stores written before turns kept their lore context
            self._db.execute("ALTER TABLE turns ADD COLUMN context TEXT NOT NULL DEFAULT ''")
        if "turn_id" not in columns:  # stores written before turns could be retried idempotently
            self._db.execute("ALTER TABLE turns ADD COLUMN turn_id TEXT NOT NULL DEFAULT ''")
        self._db.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS turns_turn_id ON turns (session_id, turn_id) WHERE turn_id != ''"
        )
        if "vector" not in columns:  # stores written before turns kept their sentence vectors
            self._db.execute("ALTER TABLE turns ADD COLUMN vector BLOB")
        if "player_id" not in {row[1] for row in self._db.execute("PRAGMA table_info(sessions)")}:
            self._db.execute("ALTER TABLE sessions ADD COLUMN player_id TEXT NOT NULL DEFAULT ''")
        self._db.executescript(SQLITE_MEMORIES)
        self._db.executescript(SQLITE_SCENES)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create(
        self,
        session_id: str,
        persona: Persona,
        created_ms: int | None = None,
        owner: str = "",
        player_id: str = "",
    ) -> int:
        created = created_ms or now_ms()
        with self._lock:
            self._db.execute(
                "INSERT INTO sessions (id, persona, created_ms, owner, player_id) VALUES (?, ?, ?, ?, ?)",
                (session_id, json.dumps(persona.to_dict()), created, owner, player_id),
            )
        return created

    def exists(self, session_id: str) -> bool:
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is not None
            )

    def owner_of(self, session_id: str) -> str | None:
        """The API key name that owns the session ('' without keys), or None when there is no such session."""
        with self._lock:
            row = self._db.execute("SELECT owner FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return None if row is None else str(row[0])

    def version(self, session_id: str) -> tuple[int, int] | None:
        """(created_ms, turns stored): what a live copy must match to be current; None for no such session."""
        with self._lock:
            row = self._db.execute(
                "SELECT created_ms, (SELECT COUNT(*) FROM turns WHERE session_id = ?) FROM sessions WHERE id = ?",
                (session_id, session_id),
            ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def count(self, owner: str | None = None) -> int:
        with self._lock:
            if owner is None:
                return int(self._db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])
            return int(
                self._db.execute("SELECT COUNT(*) FROM sessions WHERE owner = ?", (owner,)).fetchone()[0]
            )

    def load(self, session_id: str) -> StoredSession | None:
        with self._lock:
            row = self._db.execute(
                "SELECT persona, created_ms, player_id, owner FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
            if row is None:
                return None
            turns = self._db.execute(
                "SELECT user, reply, prefix, prefix_rows, context, created_ms, vector FROM turns WHERE session_id = ? "
                "ORDER BY idx",
                (session_id,),
            ).fetchall()
        history, times = turns_from_rows([t[:6] for t in turns])
        return StoredSession(
            session_id,
            Persona.from_dict(json.loads(row[0])),
            row[1],
            history,
            times,
            row[2],
            row[3],
            vectors_from_rows(turns, 6),
        )

    def page(
        self, after_seq: int, limit: int, owner: str | None = None
    ) -> list[tuple[int, str, Persona, int]]:
        """(seq, id, persona, created_ms) of up to `limit` sessions created after `after_seq` (only `owner`'s)."""
        with self._lock:
            if owner is None:
                rows = self._db.execute(
                    "SELECT seq, id, persona, created_ms FROM sessions WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after_seq, limit),
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT seq, id, persona, created_ms FROM sessions WHERE seq > ? AND owner = ? "
                    "ORDER BY seq LIMIT ?",
                    (after_seq, owner, limit),
                ).fetchall()
        return [(seq, sid, Persona.from_dict(json.loads(p)), c) for seq, sid, p, c in rows]

    def append_turn(
        self, session_id: str, index: int, turn: Turn, turn_id: str = "", vector: np.ndarray | None = None
    ) -> None:
        """Commit one finished turn (durable when this returns). A turn_id is unique within its session."""
        blob, rows = prefix_blob(turn)
        with self._lock:
            self._db.execute(
                "INSERT INTO turns (session_id, idx, user, reply, prefix, prefix_rows, context, created_ms, turn_id, "
                "vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session_id,
                    index,
                    turn.user,
                    turn.reply,
                    blob,
                    rows,
                    turn.context,
                    now_ms(),
                    turn_id,
                    vector_blob(vector),
                ),
            )

    def find_turn(self, session_id: str, turn_id: str) -> tuple[str, str] | None:
        """(player line, reply) of the session's turn with this turn_id, if it was committed."""
        with self._lock:
            row = self._db.execute(
                "SELECT user, reply FROM turns WHERE session_id = ? AND turn_id = ?", (session_id, turn_id)
            ).fetchone()
        return None if row is None else (row[0], row[1])

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
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO sessions (id, persona, created_ms, owner, player_id) VALUES (?, ?, ?, ?, ?)",
                    (session_id, json.dumps(persona.to_dict()), created_ms, owner, player_id),
                )
                for args in insert_rows(memories, owner, now_ms()):
                    self._db.execute(INSERT_MEMORY.replace("INSERT", "INSERT OR IGNORE", 1), args)
                for i, t in enumerate(turns):
                    self._db.execute(
                        "INSERT INTO turns (session_id, idx, user, reply, prefix, prefix_rows, created_ms) "
                        "VALUES (?, ?, ?, ?, NULL, 0, ?)",
                        (session_id, i, t.user, t.reply, created_ms),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def delete(self, session_id: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
            return cur.rowcount > 0

    # ---- long-term memory --------------------------------------------------------------------------------
    def add_memories(
        self, memories: Sequence[tuple[Memory, np.ndarray | None]], owner: str = ""
    ) -> list[Memory]:
        rows = insert_rows(memories, owner, now_ms())
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(INSERT_MEMORY, rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return [memory_of((r[0], r[1], r[2], r[3], r[4], r[5], r[8])) for r in rows]

    def list_memories(
        self, npc: str = "", group: str = "", player_id: str = "", owner: str | None = None, limit: int = 100
    ) -> list[Memory]:
        sql, args = list_query(npc, group, player_id, owner, limit)
        with self._lock:
            return [memory_of(r) for r in self._db.execute(sql, args).fetchall()]

    def recall_memories(
        self, npc: str, group: str, player_id: str, owner: str
    ) -> list[tuple[Memory, np.ndarray | None]]:
        with self._lock:
            rows = self._db.execute(RECALL, scope_args(npc, group, player_id, owner)).fetchall()
        return recalled(rows)

    def memory_stamp(self, npc: str, group: str, player_id: str, owner: str) -> tuple[int, int]:
        with self._lock:
            rows = self._db.execute(STAMP, scope_args(npc, group, player_id, owner)).fetchall()
        return stamp_of(rows)

    def set_memory_vectors(self, vectors: Sequence[tuple[str, np.ndarray]]) -> None:
        rows = [(vector_blob(v), mid) for mid, v in vectors]
        with self._lock:
            self._db.executemany(SET_VECTOR, rows)

    def delete_memory(self, memory_id: str, owner: str | None = None) -> bool:
        sql, args = owned("DELETE FROM memories WHERE id = ?", [memory_id], owner)
        with self._lock:
            return self._db.execute(sql, args).rowcount > 0

    def player_sessions(self, player_id: str, owner: str | None = None) -> list[str]:
        sql, args = owned("SELECT id FROM sessions WHERE player_id = ?", [player_id], owner)
        with self._lock:
            return [r[0] for r in self._db.execute(sql, args).fetchall()]

    def forget_player(self, player_id: str, owner: str | None = None) -> tuple[int, int]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                counts = [
                    self._db.execute(sql, args).rowcount
                    for sql, args in (
                        owned(f"DELETE FROM {table} WHERE player_id = ?", [player_id], owner)
                        for table in ("memories", "sessions")
                    )
                ]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return counts[0], counts[1]

    # ---- scenes ------------------------------------------------------------------------------------------
    def create_scene(self, scene: SceneState) -> None:
        with self._lock:
            try:
                self._db.execute(INSERT_SCENE, insert_args(scene))
            except sqlite3.IntegrityError as exc:
                raise SessionExistsError(f"scene_id: {scene.id!r} exists already") from exc

    def load_scene(self, scene_id: str) -> SceneState | None:
        with self._lock:
            row = self._db.execute(SELECT_SCENE, (scene_id,)).fetchone()
        return None if row is None else scene_of(row)

    def save_scene(self, scene: SceneState) -> None:
        with self._lock:
            self._db.execute(UPDATE_SCENE, (state_json(scene), scene.id))

    def delete_scene(self, scene_id: str) -> bool:
        with self._lock:
            return self._db.execute(DELETE_SCENE, (scene_id,)).rowcount > 0

    def integrity_check(self) -> str:
        with self._lock:
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])
