"""The long-term memory table both store backends keep (runtime/memory.py says what a memory is).

One row a memory, with its MiniLM vector (made once, when it is added) so recall never re-encodes. The queries are
written once here with `?` placeholders; the PostgreSQL store turns them into `%s`. `owner` is the API key name that
added it ('' without keys), as for sessions: a key sees and recalls only its own.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...runtime.memory import Memory
from .base import vector_blob, vectors_from_rows

SQLITE_MEMORIES = """
CREATE TABLE IF NOT EXISTS memories (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    npc TEXT NOT NULL DEFAULT '',
    grp TEXT NOT NULL DEFAULT '',
    player_id TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    source TEXT NOT NULL,
    vector BLOB,
    owner TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS memories_npc ON memories (npc, player_id, owner, seq);
CREATE INDEX IF NOT EXISTS memories_grp ON memories (grp, player_id, owner, seq);
CREATE INDEX IF NOT EXISTS memories_player ON memories (player_id);
"""
POSTGRES_MEMORIES = """
ALTER TABLE sessions ADD COLUMN player_id TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_player ON sessions (player_id) WHERE player_id <> '';
CREATE TABLE memories (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT UNIQUE NOT NULL,
    npc TEXT NOT NULL DEFAULT '',
    grp TEXT NOT NULL DEFAULT '',
    player_id TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    source TEXT NOT NULL,
    vector BYTEA,
    owner TEXT NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL
);
CREATE INDEX memories_npc ON memories (npc, player_id, owner, seq);
CREATE INDEX memories_grp ON memories (grp, player_id, owner, seq);
CREATE INDEX memories_player ON memories (player_id);
"""

COLUMNS = "id, npc, grp, player_id, text, source, created_ms"
INSERT_MEMORY = (
    "INSERT INTO memories (id, npc, grp, player_id, text, source, vector, owner, created_ms) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# What one NPC recalls talking to one player: its own memories and its group's, about nobody or about this player.
# Two index-only halves (npc, player_id, owner, seq) and (grp, ...), rather than one OR that scans every row.
_OWN = "npc = ? AND player_id IN ('', ?) AND owner = ?"
_GROUP = "npc = '' AND grp = ? AND grp <> '' AND player_id IN ('', ?) AND owner = ?"
RECALL = (
    f"SELECT {COLUMNS}, vector, seq FROM memories WHERE {_OWN} "
    f"UNION ALL SELECT {COLUMNS}, vector, seq FROM memories WHERE {_GROUP} ORDER BY 9"
)
STAMP = (
    f"SELECT count(*), coalesce(max(seq), 0) FROM memories WHERE {_OWN} "
    f"UNION ALL SELECT count(*), coalesce(max(seq), 0) FROM memories WHERE {_GROUP}"
)
SET_VECTOR = "UPDATE memories SET vector = ? WHERE id = ?"


def scope_args(npc: str, group: str, player_id: str, owner: str) -> tuple[str, ...]:
    return npc, player_id, owner, group, player_id, owner


def stamp_of(rows: Sequence[Sequence[Any]]) -> tuple[int, int]:
    """The two halves' (count, newest seq) as one stamp."""
    return sum(int(r[0]) for r in rows), max(int(r[1]) for r in rows)


def insert_rows(memories: Sequence[tuple[Memory, np.ndarray | None]], owner: str, now: int) -> list[tuple]:
    """INSERT arguments for each memory (a new id and time where it has none), in order."""
    return [
        (
            m.id or new_memory_id(),
            m.npc,
            m.group,
            m.player_id,
            m.text,
            m.source,
            vector_blob(v),
            owner,
            m.created_ms or now,
        )
        for m, v in memories
    ]


def memory_of(row: Sequence[Any]) -> Memory:
    mid, npc, grp, player, text, source, created = row[:7]
    return Memory(text, npc, grp, player, source, mid, int(created))


def recalled(rows: Sequence[Sequence[Any]]) -> list[tuple[Memory, np.ndarray | None]]:
    return list(zip([memory_of(r) for r in rows], vectors_from_rows(rows, 7), strict=True))


def list_query(npc: str, group: str, player_id: str, owner: str | None, limit: int) -> tuple[str, list[Any]]:
    """Memories matching every filter given (empty ones match all), newest first."""
    where, args = [], []
    for column, value in (("npc", npc), ("grp", group), ("player_id", player_id), ("owner", owner)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    sql = f"SELECT {COLUMNS} FROM memories"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + " ORDER BY seq DESC LIMIT ?", [*args, limit]


def new_memory_id() -> str:
    return "m-" + secrets.token_hex(8)


def owned(sql: str, args: Sequence[Any], owner: str | None) -> tuple[str, list[Any]]:
    """`sql` (a WHERE clause already) narrowed to one owner's rows; None: every owner's (a server without keys)."""
    return (sql, list(args)) if owner is None else (sql + " AND owner = ?", [*args, owner])
