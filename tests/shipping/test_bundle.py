"""`npc-sdk bundle`: the frozen server runs from a copy in a fresh folder with no Python reachable."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from npc_sdk.client import Client
from npc_sdk.demo import DEMO_PERSONA

pytestmark = pytest.mark.slow

KEY = "bundle-test-key-5d1e"
MEADOW = Path(__file__).resolve().parents[2] / "npc_sdk" / "assets" / "scenes" / "meadow_slimes.png"


def _as_jpeg(path: Path) -> bytes:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _python_roots() -> list[Path]:
    """Every place a Python interpreter or its library could be found on this machine."""
    roots = {Path(sys.base_prefix), Path(sys.prefix), Path(os.path.realpath(sys.executable)).parent}
    roots |= {p for p in Path("/usr/lib").glob("python3*")} | {
        p for p in Path("/usr/local/lib").glob("python3*")
    }
    roots = {r for r in roots if r.is_dir() and r != Path("/")}
    # Not a folder inside another: once the outer one is hidden, the inner mount point no longer exists.
    return sorted(r for r in roots if not any(outer in r.parents for outer in roots))


def _can_hide_mounts() -> bool:
    """Root, and allowed a private mount namespace with a tmpfs in it (a container may refuse either)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = ["unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs none /mnt"]
    return subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode == 0


def _no_python_command(exe: Path, args: list[str]) -> list[str]:
    """Run `exe` with every Python directory hidden under an empty tmpfs, in a private mount namespace (root), or
    else only with an empty environment and a PATH without Python."""
    if _can_hide_mounts():
        hide = " && ".join(f"mount -t tmpfs none '{root}'" for root in _python_roots())
        script = f'{hide} && exec env -i HOME=/tmp PATH=/nonexistent NPC_SDK_API_KEY={KEY} "$0" "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(exe), *args]
    return ["env", "-i", "HOME=/tmp", "PATH=/nonexistent", f"NPC_SDK_API_KEY={KEY}", str(exe), *args]


def test_the_bundle_holds_the_runtime_the_model_personas_and_notices(bundle):
    summary = json.loads((bundle / "bundle.json").read_text())
    assert (bundle / summary["executable"]).is_file()
    assert (bundle / "model" / "manifest.json").is_file() and summary["model_precision"] == "int4"
    assert "brakka.toml" in summary["personas"]
    frozen = {p.name.lower() for p in (bundle / "_internal").iterdir()}
    for absent in ("torch", "transformers", "npc_export", "sympy"):
        assert not any(name == absent or name.startswith(absent + "-") for name in frozen), absent
    assert {"onnxruntime", "grpc", "tokenizers", "numpy", "npc_sdk"} <= frozen
    notices = (bundle / "THIRD_PARTY_NOTICES").read_text()
    for component in ("onnxruntime", "grpcio", "numpy", "tokenizers", "SmolLM2", "MiniLM", "EfficientNet-Lite0",
                      "Kenney", "CC0-1.0"):  # fmt: skip
        assert component in notices, component
    assert summary["runtime_mb"] < summary["total_mb"] and summary["prefill_graph_mb"] > 0


def test_the_bundle_serves_from_a_fresh_folder_with_no_python_reachable(bundle, tmp_path):
    copy = tmp_path / "game" / "npc"
    shutil.copytree(bundle, copy, symlinks=True)
    data = tmp_path / "save"
    cmd = _no_python_command(copy / "npc-server", ["--port", "0", "--data-dir", str(data), "--threads", "1"])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ready = None
        lines = []
        deadline = time.monotonic() + 180
        assert proc.stdout is not None
        while ready is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("{"):
                ready = json.loads(line)
        assert ready and ready["ready"], "".join(lines)
        with Client(f"127.0.0.1:{ready['port']}", api_key=KEY, timeout=120) as c:
            # the bundle's own persona folder is served
            assert c.create_session_from_file("brakka").persona.name == "Brakka"
            sid = c.create_session(DEMO_PERSONA).session_id
            done = c.say(sid, "Can you sharpen my sword?", max_tokens=24)
            assert done.text and done.usage.completion_tokens > 0
            # screenshots decode in the frozen runtime, PNG and JPEG alike (Pillow is bundled without its extras)
            for picture in (MEADOW.read_bytes(), _as_jpeg(MEADOW)):
                seen = c.say(sid, "What do you see out there?", screenshot=picture, max_tokens=8).seen
                assert {"slime", "grass"} <= {s.tag for s in seen if s.source != "game"}, seen
            assert c.shutdown() == 0
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (data / "sessions.sqlite3").is_file()  # the game's save folder, not the bundle's
