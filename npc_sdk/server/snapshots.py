"""Save games: a session exported as one signed message (HMAC-SHA256 by the server's key), and read back checked."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from .._proto.npc.v1 import npc_pb2 as pb
from ..errors import InvalidInputError
from ..personas.persona import Persona
from ..personas.prompt import Turn, check_text
from ..wire import check_session_id, persona_from_proto

SNAPSHOT_FORMAT = 1
MAX_REPLY_CHARS = 16_000  # a stored reply: 1024 tokens of text with room to spare


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
