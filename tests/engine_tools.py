"""Engine-client tests need Debian tools (scripts/install_engine_tools.sh).

Without them the tests skip, except in CI, where they must run.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_tools(*names: str) -> dict[str, str]:
    """Paths of the named executables; a missing one skips the test, or fails it when NPC_SDK_REQUIRE_ENGINE_TOOLS=1."""
    found = {name: shutil.which(name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        why = f"missing {', '.join(missing)}: run scripts/install_engine_tools.sh"
        if os.environ.get("NPC_SDK_REQUIRE_ENGINE_TOOLS") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return {name: path for name, path in found.items() if path is not None}
