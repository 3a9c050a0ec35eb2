"""Where npc-sdk keeps downloaded weights, converted models and datasets (never in git)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "NPC_SDK_CACHE"


def cache_dir() -> Path:
    """The cache root: ``$NPC_SDK_CACHE`` if set, else ``~/.cache/npc-sdk``."""
    override = os.environ.get(CACHE_ENV)
    root = Path(override).expanduser() if override else Path.home() / ".cache" / "npc-sdk"
    root.mkdir(parents=True, exist_ok=True)
    return root
