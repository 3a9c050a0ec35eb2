"""The C++ sample (samples/cpp) built once per test session, for test_cpp_client.py and test_cpp_launcher.py."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from ..engine_tools import require_tools

CPP_SOURCE = Path(__file__).resolve().parents[2] / "samples" / "cpp"


def run_tool(cmd: list, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, encoding="utf-8", timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def cpp_build(tmp_path_factory) -> Path:
    """Configure and build samples/cpp once per test session (warnings in its own sources are errors; jobs: CMake's
    CMAKE_BUILD_PARALLEL_LEVEL, else 2)."""
    require_tools("cmake", "protoc", "grpc_cpp_plugin", "g++")
    build = tmp_path_factory.mktemp("cpp-build")
    started = time.monotonic()
    for cmd, timeout in [
        (
            ["cmake", "-S", CPP_SOURCE, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DNPC_CLIENT_WERROR=ON"],
            300,
        ),
        (["cmake", "--build", build, "-j", os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2")], 900),
    ]:
        done = run_tool(cmd, timeout)
        assert done.returncode == 0, f"{' '.join(map(str, cmd))}:\n{done.stdout}\n{done.stderr}"
    print(f"samples/cpp built in {time.monotonic() - started:.1f} s")
    assert not (CPP_SOURCE / "gen").exists(), "generated code belongs in the build folder"
    return build
