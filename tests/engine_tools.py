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


GODOT4_ROOT = os.environ.get("NPC_SDK_GODOT4_ROOT", "/var/cache/npc-sdk/godot4-sid")


def require_godot4() -> str:
    """The Debian sid chroot holding Godot 4 (scripts/install_engine_tools.sh); skip or fail as require_tools."""
    why = ""
    if not os.path.isfile(os.path.join(GODOT4_ROOT, "usr", "bin", "godot")):
        why = f"no Godot 4 chroot at {GODOT4_ROOT}: run scripts/install_engine_tools.sh"
    elif os.geteuid() != 0:
        why = "running Godot 4 from its chroot needs root (chroot)"
    if why:
        if os.environ.get("NPC_SDK_REQUIRE_ENGINE_TOOLS") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return GODOT4_ROOT


CSHARP_DIR = os.environ.get("NPC_SDK_CSHARP_DIR", "/var/cache/npc-sdk/csharp")


def require_google_protobuf() -> str:
    """Google.Protobuf.dll built from Debian's protobuf source (scripts/build_csharp_protobuf.sh)."""
    dll = os.path.join(CSHARP_DIR, "Google.Protobuf.dll")
    if not os.path.isfile(dll):
        why = f"no {dll}: run scripts/install_engine_tools.sh"
        if os.environ.get("NPC_SDK_REQUIRE_ENGINE_TOOLS") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return dll


def require_dotnet() -> str:
    """The .NET Core 3.1 host from the dotnetcore2 wheel (a test dependency on Linux x86_64)."""
    try:
        import dotnetcore2
    except ImportError:
        dotnetcore2 = None
    host = os.path.join(os.path.dirname(dotnetcore2.__file__), "bin", "dotnet") if dotnetcore2 else ""
    if not host or not os.path.isfile(host):
        why = "no .NET Core runtime: pip install dotnetcore2 (the test extra has it on Linux x86_64)"
        if os.environ.get("NPC_SDK_REQUIRE_ENGINE_TOOLS") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return host


def require_browser() -> tuple[str, str]:
    """Debian's headless Chromium and its driver, and Selenium (the test extra): the studio's browser tests."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        why = "selenium is missing: pip install -e '.[test]'"
        if os.environ.get("NPC_SDK_REQUIRE_ENGINE_TOOLS") == "1":
            pytest.fail(why)
        pytest.skip(why)
    found = require_tools("chromium", "chromedriver")
    return found["chromium"], found["chromedriver"]
