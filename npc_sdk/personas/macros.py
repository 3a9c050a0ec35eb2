"""Card macros in persona text, expanded where the decoder reads it (the stored persona keeps them as written).

Implemented: `{{char}}` and `<BOT>` (the NPC's name), `{{user}}` and `<USER>` (the player), and the V3
comment macros `{{// ...}}`, `{{comment: ...}}` and `{{hidden_key: ...}}`, which are removed. Any other
`{{...}}` macro (`{{random}}`, `{{roll}}`, ...) is left as written.
"""

from __future__ import annotations

import re

PLAYER_NAME = "Player"  # what {{user}} becomes; the prompt's example dialogue calls the player this too
_NAME_MACROS = re.compile(r"\{\{\s*(char|user)\s*\}\}|<(BOT|USER)>", re.IGNORECASE)
_REMOVED = re.compile(r"\{\{\s*(?://|comment\s*:|hidden_key\s*:)[^{}]*\}\}", re.IGNORECASE)


def expand(text: str, char: str, user: str = PLAYER_NAME) -> str:
    if "{" not in text and "<" not in text:
        return text
    text = _REMOVED.sub("", text)
    return _NAME_MACROS.sub(lambda m: char if (m[1] or m[2]).lower() in ("char", "bot") else user, text)
