"""The C# client code making real calls: the samples' NpcServiceClient and NpcConversation, unchanged, compiled
with mcs against the .NET Core 3.1 runtime (the dotnetcore2 wheel) and a Google.Protobuf built from Debian's protobuf
source, talking HTTP/2 cleartext to the real server on loopback through a test-only CallInvoker
(tests/clients/csharp/); and the Unity sample's NpcServerProcess launching that server
(tests/clients/csharp_launcher/)."""

from __future__ import annotations

import base64
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine_tools import CSHARP_DIR, require_dotnet, require_google_protobuf, require_tools

from ..scene_samples import check_bicker
from ..server_process import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
KEY = "dotnet-check-key"
pytestmark = pytest.mark.slow


def _mcs(mcs: str, refs: list[str], out: Path, target: str, files: list[str], *flags: str) -> None:
    run = subprocess.run(
        [mcs, "-nostdlib", "-noconfig", f"-target:{target}", "-langversion:experimental", *flags, f"-out:{out}",
         *(f"-r:{r}" for r in refs), *files],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.fixture(scope="module")
def console(tmp_path_factory) -> tuple[str, Path]:
    """(dotnet host, NpcConsoleCheck.dll) built for .NET Core 3.1."""
    mcs = require_tools("mcs", "protoc")["mcs"]
    require_google_protobuf()
    host = require_dotnet()
    framework = sorted(
        glob.glob(os.path.join(os.path.dirname(host), "shared", "Microsoft.NETCore.App", "3.1.*"))
    )[-1]
    refs = [
        p
        for p in glob.glob(os.path.join(framework, "*.dll"))
        if os.path.basename(p).startswith(("System.", "mscorlib", "netstandard"))
        and "WindowsRuntime" not in p
    ]
    out = tmp_path_factory.mktemp("dotnet")
    # Google.Protobuf again, from the same patched sources, against this runtime (mono's build names mono's corlib)
    sources = [str(p) for p in Path(CSHARP_DIR, "Google.Protobuf-src").rglob("*.cs")]
    _mcs(
        mcs,
        refs,
        out / "Google.Protobuf.dll",
        "library",
        sources,
        "-unsafe",
        "-nowarn:1591,618,612,436,108,109,114,219,414",
    )
    run = subprocess.run(
        ["protoc", f"--proto_path={ROOT / 'proto'}", f"--csharp_out={out}", str(ROOT / "proto/npc/v1/npc.proto")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    files = [
        str(ROOT / "samples/csharp_common/mono/GrpcStandIn.cs"),
        str(out / "Npc.cs"),
        *map(str, sorted((ROOT / "samples/csharp_common").glob("*.cs"))),
        *map(str, sorted((ROOT / "tests/clients/csharp").glob("*.cs"))),
    ]
    _mcs(
        mcs,
        [*refs, str(out / "Google.Protobuf.dll")],
        out / "NpcConsoleCheck.dll",
        "exe",
        files,
        "-nowarn:1591,414,649,67",
    )
    (out / "NpcConsoleCheck.runtimeconfig.json").write_text(
        '{"runtimeOptions": {"tfm": "netcoreapp3.1", "framework": {"name": "Microsoft.NETCore.App", "version": "'
        + os.path.basename(framework)
        + '"}}}\n'
    )
    # The Unity sample's launcher (plain .NET), with its own console program, from the same pieces.
    launcher = [
        str(ROOT / "samples/csharp_common/mono/GrpcStandIn.cs"),
        str(out / "Npc.cs"),
        *map(str, sorted((ROOT / "samples/csharp_common").glob("*.cs"))),
        str(ROOT / "tests/clients/csharp/H2cCallInvoker.cs"),
        str(ROOT / "samples/unity/Runtime/NpcServerProcess.cs"),
        str(ROOT / "tests/clients/csharp_launcher/NpcLauncherCheck.cs"),
    ]
    _mcs(
        mcs,
        # Win32Exception (Process.Start's error) lives in Microsoft.Win32.Primitives on .NET Core
        [*refs, os.path.join(framework, "Microsoft.Win32.Primitives.dll"), str(out / "Google.Protobuf.dll")],
        out / "NpcLauncherCheck.dll",
        "exe",
        launcher,
        "-nowarn:1591,414,649,67",
    )
    shutil.copy(out / "NpcConsoleCheck.runtimeconfig.json", out / "NpcLauncherCheck.runtimeconfig.json")
    return host, out / "NpcConsoleCheck.dll"


@pytest.fixture(scope="module")
def server(exported_int4, tmp_path_factory):
    with ServerProcess(exported_int4, tmp_path_factory.mktemp("data"), "--api-key", KEY) as proc:
        yield proc


def _dotnet(host: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOTNET_SYSTEM_GLOBALIZATION_INVARIANT": "1", "DOTNET_CLI_TELEMETRY_OPTOUT": "1"}
    return subprocess.run([host, *args], capture_output=True, text=True, timeout=300, env=env)


def test_the_csharp_client_calls_the_real_server_over_h2c(console, server):
    from npc_sdk.client import Client
    from npc_sdk.demo import scene_path

    host, program = console
    run = _dotnet(host, str(program), f"http://{server.address}", KEY, str(scene_path("meadow_slimes.png")))
    out = run.stdout
    assert run.returncode == 0 and "ERROR" not in out, out + run.stderr
    lines = out.splitlines()

    def decoded(tag: str) -> list[str]:
        return [base64.b64decode(line.split()[1]).decode() for line in lines if line.startswith(tag + " ")]

    deltas, done = decoded("DELTA"), decoded("DONE")
    assert len(deltas) >= 2 and len(done) == 1 and "".join(deltas) == done[0], out
    seen = next(line for line in lines if line.startswith("SEEN "))
    assert "(screenshot)" in seen, seen  # the screenshot reached the NPC
    assert "CANCELLED Cancelled" in lines, out
    invalid = next(line for line in lines if line.startswith("INVALID "))
    assert invalid.startswith("INVALID InvalidArgument scene[0].x: "), invalid
    assert "WRONG_KEY Unauthenticated" in lines, out
    session_id = next(line.split()[1] for line in lines if line.startswith("SESSION "))
    # NpcConversation, the class both engine samples talk through: a turn, a cancel, a forget
    conversation_id = next(line.split()[1] for line in lines if line.startswith("CONVERSATION "))
    assert conversation_id != session_id, out
    assert decoded("CONVERSATION_DONE")[0].strip(), out
    assert "CONVERSATION_CANCELLED null" in lines, out
    assert "FORGOTTEN NotFound" in lines, out
    with Client(server.address, api_key=KEY) as client:
        turns = client.get_session(session_id).turns
    assert [t.reply for t in turns] == [done[0]]  # the cancelled turn and the refused one left nothing


def test_the_csharp_scene_talk_two_npcs_bicker_and_the_player_cuts_in(console, server):
    """NpcSceneTalk, which the Unity and Godot scene samples talk through, in their flow (NpcSceneCheck.cs)."""
    from npc_sdk.client import Client
    from npc_sdk.demo import scene_path

    host, program = console
    shot = str(scene_path("meadow_slimes.png"))
    run = _dotnet(host, str(program), f"http://{server.address}", KEY, shot, "scene")
    assert run.returncode == 0 and "the talk ended before" not in run.stderr, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1] == "TALK_CANCELLED True", run.stdout  # and nothing of it stored:
    with Client(server.address, api_key=KEY) as client:
        check_bicker(run.stdout, client)  # every stored line was printed


def test_the_unity_launcher_starts_restarts_and_stops_the_real_server(console, exported_int4, tmp_path):
    """NpcServerProcess (samples/unity/Runtime), unchanged, on .NET Core: the ready line, a fresh key that is not on
    the command line, health, a crash and the restart on a new port, the same session carried on, the Shutdown RPC."""
    host, program = console
    data = tmp_path / "data"
    serve = [sys.executable, "-m", "npc_sdk.cli", "serve", "--model", str(exported_int4)]
    run = subprocess.run(
        [host, str(program.with_name("NpcLauncherCheck.dll")), str(data), *serve],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=ROOT,
        env={**os.environ, "DOTNET_SYSTEM_GLOBALIZATION_INVARIANT": "1", "DOTNET_CLI_TELEMETRY_OPTOUT": "1"},
    )
    assert run.returncode == 0 and "ERROR" not in run.stdout, run.stdout + run.stderr[-4000:]
    lines = run.stdout.splitlines()

    def values(tag: str) -> list[list[str]]:
        return [line.split()[1:] for line in lines if line.startswith(tag + " ")]

    ready = [e for e in values("EVENT") if e[0] == "Ready"]  # Ready generation pid port ...
    # two starts, two processes
    assert [e[1] for e in ready] == ["1", "2"] and ready[0][2] != ready[1][2], lines
    assert values("READY") == [[f"http://127.0.0.1:{ready[0][3]}"]]
    assert values("KEY") == [["32", "false"]]  # a fresh key, not on the command line
    assert values("HEALTH") == [["null"]]
    assert values("KILLED") == [[ready[0][2]]]
    exited = [e for e in values("EVENT") if e[0] == "Exited"]
    assert len(exited) == 1 and exited[0][1] == "1", lines
    assert [e[5] for e in values("EVENT") if e[0] == "Restarting"] == ["500"]
    assert values("BACK") == [["2", f"http://127.0.0.1:{ready[1][3]}"]]
    first, second = (
        base64.b64encode(t.encode()).decode()
        for t in ("Keep my sword safe until I come back.", "Do you still have my sword?")
    )
    assert values("HISTORY") == [[first], [first, second]]  # the session went on from the store
    assert values("STOP") == [["shutdown_rpc"]] and values("GONE") == [["true"]]
    assert [e[4] for e in values("EVENT") if e[0] == "Stopped"] == ["0"]  # exit code 0: a graceful stop
