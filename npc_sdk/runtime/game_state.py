"""Game state the engine sends with a line (ChatRequest.state): small key/value facts for the prompt and actions.

"player_health = low", "quest_stage = 3", "time_of_day = night". Validated by name and size; shown to the decoder
as one note before the player's words and checked by actions' `when` conditions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..errors import InvalidInputError

MAX_STATE_KEYS = 16
MAX_VALUE_CHARS = 64
KEY_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")


def check_state(state: Mapping[str, str] | None) -> dict[str, str]:
    if not state:
        return {}
    if len(state) > MAX_STATE_KEYS:
        raise InvalidInputError("state", f"{len(state)} keys, over {MAX_STATE_KEYS}")
    out: dict[str, str] = {}
    for key, value in state.items():
        if not isinstance(key, str) or not KEY_PATTERN.match(key):
            raise InvalidInputError(
                "state", f"key {key!r} must be a letter then up to 31 letters, digits, _ . -"
            )
        if not isinstance(value, str) or not value.strip():
            raise InvalidInputError(f"state['{key}']", "must be non-empty text")
        if len(value) > MAX_VALUE_CHARS or "\n" in value:
            raise InvalidInputError(
                f"state['{key}']", f"must be one line of at most {MAX_VALUE_CHARS} characters"
            )
        out[key] = value.strip()
    return out


def state_note(state: Mapping[str, str]) -> str:
    """ "(Game state: player health: low; quest stage: 3.)" or "" when there is none."""
    if not state:
        return ""
    parts = [f"{k.replace('_', ' ')}: {v}" for k, v in sorted(state.items())]
    return "(Game state: " + "; ".join(parts) + ".)\n"
