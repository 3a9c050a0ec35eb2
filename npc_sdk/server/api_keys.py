"""API keys and their limits: one key from --api-key, or many from a TOML file (--api-keys).

[[key]]
name = "studio-build"        # shown in logs; owns the sessions it creates
secret = "long-random-text"
max_sessions = 1000          # sessions this key may hold at once (0 = the server's limit only)
max_concurrent_turns = 8     # Chat calls of this key streaming at once (0 = no per-key limit)
"""

from __future__ import annotations

import hmac
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class ApiKey:
    name: str
    secret: str
    max_sessions: int = 0
    max_concurrent_turns: int = 0


def load_keys(path: Path) -> list[ApiKey]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInputError("api_keys", f"{path}: {exc}") from exc
    keys = []
    for i, entry in enumerate(data.get("key", [])):
        try:
            key = ApiKey(**entry)
        except TypeError as exc:
            raise InvalidInputError(f"key[{i}]", f"{path}: {exc}") from exc
        if len(key.secret) < 16:
            raise InvalidInputError(f"key[{i}].secret", f"{path}: use at least 16 characters")
        keys.append(key)
    if not keys:
        raise InvalidInputError("api_keys", f"{path}: no [[key]] entries")
    return keys


def match(keys: list[ApiKey], authorization: str | bytes) -> ApiKey | None:
    """The key whose "Bearer <secret>" equals `authorization`; every key is compared, in constant time each."""
    given = authorization.encode() if isinstance(authorization, str) else authorization
    found = None
    for key in keys:
        if hmac.compare_digest(given, f"Bearer {key.secret}".encode()):
            found = key
    return found
