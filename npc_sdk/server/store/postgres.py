"""PostgresSessionStore: `SessionStore` (store/base.py) on PostgreSQL, through psycopg 3 and a connection pool.

`npc-sdk serve --store postgresql://user:pass@host/db`. Same semantics as the SQLite store: a finished turn is
committed (the INSERT's transaction has returned) before its done event is sent. The schema is versioned: each
entry of MIGRATIONS runs once, in order, in its own transaction, under an advisory lock so several servers
starting against one database migrate it once. Installed with the `postgres` extra (`pip install 'npc-sdk[postgres]'`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import SessionExistsError
from ...personas.persona import Persona
from ...personas.prompt import Turn
from ...runtime.memory import Memory
from ..scene_rules import SceneState
from .base import StoredSession, now_ms, prefix_blob, turns_from_rows, vector_blob, vectors_from_rows
from .memories import (
    INSERT_MEMORY,
    POSTGRES_MEMORIES,
    RECALL,
    SET_VECTOR,
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
    POSTGRES_SCENES,
    SELECT_SCENE,
    UPDATE_SCENE,
    insert_args,
    scene_of,
    state_json,
)

MIGRATIONS: tuple[str, ...] = (
    # 1: sessions and their finished turns, as in the SQLite store (store/sqlite.py)
    """
    CREATE TABLE sessions (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT UNIQUE NOT NULL,
        persona JSONB NOT NULL,
        created_ms BIGINT NOT NULL,
        owner TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX sessions_owner ON sessions (owner, seq);
    CREATE TABLE turns (
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        "user" TEXT NOT NULL,
        reply TEXT NOT NULL,
        prefix BYTEA,
        prefix_rows INTEGER NOT NULL DEFAULT 0,
        context TEXT NOT NULL DEFAULT '',
        created_ms BIGINT NOT NULL,
        PRIMARY KEY (session_id, idx)
    );
    """,
    # 2: idempotent turns (ChatRequest.turn_id), unique within a session when given
    """
    ALTER TABLE turns ADD COLUMN turn_id TEXT NOT NULL DEFAULT '';
    CREATE UNIQUE INDEX turns_turn_id ON turns (session_id, turn_id) WHERE turn_id <> '';
    """,
    # 3: who plays a session, and long-term memories (store/memories.py)
    POSTGRES_MEMORIES,
    # 4: scenes of several NPCs (store/scenes.py)
    POSTGRES_SCENES,
    # 5: each turn's sentence vector (runtime/memory.py), so a reloaded session recalls without re-encoding
    "ALTER TABLE turns ADD COLUMN vector BYTEA;",
)
_LOCK_ID = 0x6E70635F73746F72  # "npc_stor": the advisory lock migrations run under


class PostgresSessionStore:
    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8) -> None:
        try:
            from psycopg_pool import ConnectionPool
        except ImportError as exc:  # pragma: no cover - the extra is missing
            raise RuntimeError("--store postgresql://... needs: pip install 'npc-sdk[postgres]'") from exc
        self.url = url
        self.pool = ConnectionPool(
            url, min_size=min_size, max_size=max_size, open=True, kwargs={"autocommit": True}
        )
        self.pool.wait(timeout=30)
        self.migrate()

    @property
    def schema_version(self) -> int:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT max(version) FROM npc_schema").fetchone()
        return int(row[0] or 0)

    def migrate(self) -> None:
        with self.pool.connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
            try:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS npc_schema (version INTEGER PRIMARY KEY, applied_ms BIGINT)"
                )
                done = {r[0] for r in conn.execute("SELECT version FROM npc_schema").fetchall()}
                for version, sql in enumerate(MIGRATIONS, start=1):
                    if version in done:
                        continue
                    with conn.transaction():
                        conn.execute(sql)
                        conn.execute("INSERT INTO npc_schema VALUES (%s, %s)", (version, now_ms()))
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))

    def close(self) -> None:
        self.pool.close()

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        with self.pool.connection() as conn:
            return conn.execute(sql, args).fetchone()

    def create(
        self,
        session_id: str,
        persona: Persona,
        created_ms: int | None = None,
        owner: str = "",
        player_id: str = "",
    ) -> int:
        created = created_ms or now_ms()
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO sessions (id, persona, created_ms, owner, player_id) VALUES (%s, %s, %s, %s, %s)",
                (session_id, json.dumps(persona.to_dict()), created, owner, player_id),
            )
        return created

    def exists(self, session_id: str) -> bool:
        return self._one("SELECT 1 FROM sessions WHERE id = %s", (session_id,)) is not None

    def owner_of(self, session_id: str) -> str | None:
        row = self._one("SELECT owner FROM sessions WHERE id = %s", (session_id,))
        return None if row is None else str(row[0])

    def version(self, session_id: str) -> tuple[int, int] | None:
        """(created_ms, turns stored): what a live copy must match to be current; None for no such session."""
        row = self._one(
            "SELECT created_ms, (SELECT count(*) FROM turns WHERE session_id = %s) FROM sessions WHERE id = %s",
            (session_id, session_id),
        )
        return None if row is None else (int(row[0]), int(row[1]))

    def count(self, owner: str | None = None) -> int:
        if owner is None:
            return int(self._one("SELECT count(*) FROM sessions")[0])
        return int(self._one("SELECT count(*) FROM sessions WHERE owner = %s", (owner,))[0])

    def load(self, session_id: str) -> StoredSession | None:
        with self.pool.connection() as conn, conn.transaction():  # one snapshot of the session and its turns
            row = conn.execute(
                "SELECT persona, created_ms, player_id, owner FROM sessions WHERE id = %s", (session_id,)
            ).fetchone()
            if row is None:
                return None
            turns = conn.execute(
                'SELECT "user", reply, prefix, prefix_rows, context, created_ms, vector FROM turns '
                "WHERE session_id = %s ORDER BY idx",
                (session_id,),
            ).fetchall()
        history, times = turns_from_rows([t[:6] for t in turns])
        persona = row[0] if isinstance(row[0], dict) else json.loads(row[0])
        return StoredSession(
            session_id,
            Persona.from_dict(persona),
            int(row[1]),
            history,
            [int(t[5]) for t in turns],
            row[2],
            row[3],
            vectors_from_rows(turns, 6),
        )

    def page(
        self, after_seq: int, limit: int, owner: str | None = None
    ) -> list[tuple[int, str, Persona, int]]:
        with self.pool.connection() as conn:
            if owner is None:
                rows = conn.execute(
                    "SELECT seq, id, persona, created_ms FROM sessions WHERE seq > %s ORDER BY seq LIMIT %s",
                    (after_seq, limit),
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT seq, id, persona, created_ms FROM sessions WHERE seq > %s AND owner = %s "
                    "ORDER BY seq LIMIT %s",
                    (after_seq, owner, limit),
                ).fetchall()
        return [(int(seq), sid, Persona.from_dict(p), int(c)) for seq, sid, p, c in rows]

    def append_turn(
        self, session_id: str, index: int, turn: Turn, turn_id: str = "", vector: np.ndarray | None = None
    ) -> None:
        """Commit one finished turn (durable when this returns: autocommit, synchronous_commit as the server has it)."""
        blob, rows = prefix_blob(turn)
        with self.pool.connection() as conn:
            conn.execute(
                'INSERT INTO turns (session_id, idx, "user", reply, prefix, prefix_rows, context, created_ms, turn_id, '
                "vector) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
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
        row = self._one(
            'SELECT "user", reply FROM turns WHERE session_id = %s AND turn_id = %s', (session_id, turn_id)
        )
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
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO sessions (id, persona, created_ms, owner, player_id) VALUES (%s, %s, %s, %s, %s)",
                (session_id, json.dumps(persona.to_dict()), created_ms, owner, player_id),
            )
            for args in insert_rows(memories, owner, now_ms()):
                conn.execute(_pg(INSERT_MEMORY) + " ON CONFLICT (id) DO NOTHING", args)
            for i, t in enumerate(turns):
                conn.execute(
                    'INSERT INTO turns (session_id, idx, "user", reply, prefix, prefix_rows, created_ms) '
                    "VALUES (%s, %s, %s, %s, NULL, 0, %s)",
                    (session_id, i, t.user, t.reply, created_ms),
                )

    def delete(self, session_id: str) -> bool:
        with self.pool.connection() as conn:
            return conn.execute("DELETE FROM sessions WHERE id = %s", (session_id,)).rowcount > 0

    # ---- long-term memory --------------------------------------------------------------------------------
    def add_memories(
        self, memories: Sequence[tuple[Memory, np.ndarray | None]], owner: str = ""
    ) -> list[Memory]:
        rows = insert_rows(memories, owner, now_ms())
        with self.pool.connection() as conn, conn.transaction():
            for args in rows:
                conn.execute(_pg(INSERT_MEMORY), args)
        return [memory_of((r[0], r[1], r[2], r[3], r[4], r[5], r[8])) for r in rows]

    def list_memories(
        self, npc: str = "", group: str = "", player_id: str = "", owner: str | None = None, limit: int = 100
    ) -> list[Memory]:
        sql, args = list_query(npc, group, player_id, owner, limit)
        with self.pool.connection() as conn:
            return [memory_of(r) for r in conn.execute(_pg(sql), args).fetchall()]

    def recall_memories(
        self, npc: str, group: str, player_id: str, owner: str
    ) -> list[tuple[Memory, np.ndarray | None]]:
        with self.pool.connection() as conn:
            rows = conn.execute(_pg(RECALL), scope_args(npc, group, player_id, owner)).fetchall()
        return recalled(rows)

    def memory_stamp(self, npc: str, group: str, player_id: str, owner: str) -> tuple[int, int]:
        with self.pool.connection() as conn:
            rows = conn.execute(_pg(STAMP), scope_args(npc, group, player_id, owner)).fetchall()
        return stamp_of(rows)

    def set_memory_vectors(self, vectors: Sequence[tuple[str, np.ndarray]]) -> None:
        with self.pool.connection() as conn, conn.transaction():
            for mid, v in vectors:
                conn.execute(_pg(SET_VECTOR), (vector_blob(v), mid))

    def delete_memory(self, memory_id: str, owner: str | None = None) -> bool:
        sql, args = owned("DELETE FROM memories WHERE id = ?", [memory_id], owner)
        with self.pool.connection() as conn:
            return conn.execute(_pg(sql), args).rowcount > 0

    def player_sessions(self, player_id: str, owner: str | None = None) -> list[str]:
        sql, args = owned("SELECT id FROM sessions WHERE player_id = ?", [player_id], owner)
        with self.pool.connection() as conn:
            return [r[0] for r in conn.execute(_pg(sql), args).fetchall()]

    def forget_player(self, player_id: str, owner: str | None = None) -> tuple[int, int]:
        with self.pool.connection() as conn, conn.transaction():
            counts = [
                conn.execute(_pg(sql), args).rowcount
                for sql, args in (
                    owned(f"DELETE FROM {table} WHERE player_id = ?", [player_id], owner)
                    for table in ("memories", "sessions")
                )
            ]
        return counts[0], counts[1]

    # ---- scenes ------------------------------------------------------------------------------------------
    def create_scene(self, scene: SceneState) -> None:
        import psycopg

        try:
            with self.pool.connection() as conn:
                conn.execute(_pg(INSERT_SCENE), insert_args(scene))
        except psycopg.errors.UniqueViolation as exc:
            raise SessionExistsError(f"scene_id: {scene.id!r} exists already") from exc

    def load_scene(self, scene_id: str) -> SceneState | None:
        row = self._one(_pg(SELECT_SCENE), (scene_id,))
        return None if row is None else scene_of(row)

    def save_scene(self, scene: SceneState) -> None:
        with self.pool.connection() as conn:
            conn.execute(_pg(UPDATE_SCENE), (state_json(scene), scene.id))

    def delete_scene(self, scene_id: str) -> bool:
        with self.pool.connection() as conn:
            return conn.execute(_pg(DELETE_SCENE), (scene_id,)).rowcount > 0

    def integrity_check(self) -> str:
        orphans = self._one(
            "SELECT count(*) FROM turns t LEFT JOIN sessions s ON s.id = t.session_id WHERE s.id IS NULL"
        )
        return "ok" if int(orphans[0]) == 0 else f"{orphans[0]} turns without a session"


def _pg(sql: str) -> str:
    """store/memories.py's `?` placeholders as psycopg's."""
    return sql.replace("?", "%s")
