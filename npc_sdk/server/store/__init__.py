"""Where sessions and their finished turns are kept: the `SessionStore` contract and its two backends.

`base` holds the contract (a `typing.Protocol`) and the session it returns; `sqlite` the embedded default;
`postgres` the shared store of several servers or a cluster (the `postgres` extra). `open_store` picks one.
"""

from __future__ import annotations

from pathlib import Path

from .base import SessionStore, StoredSession
from .sqlite import SqliteSessionStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(where: str | Path) -> bool:
    return str(where).startswith(POSTGRES_SCHEMES)


def open_store(where: str | Path) -> SessionStore:
    """The SQLite store at a path, or the PostgreSQL store for a postgresql:// (or postgres://) URL."""
    if is_postgres_url(where):
        # imported here: psycopg is an optional extra, and a SQLite server never needs this module
        from .postgres import PostgresSessionStore

        return PostgresSessionStore(str(where))
    return SqliteSessionStore(Path(where))


__all__ = ["SessionStore", "SqliteSessionStore", "StoredSession", "is_postgres_url", "open_store"]
