"""npc_server_process.gd (samples/godot/gdscript): the Godot 4 launcher, run headless in the Debian sid chroot with
the real bundle (`npc-sdk bundle`, frozen: no Python in the chroot) copied inside.

run_launcher_godot4.gd drives it and prints one JSON object per line: start the bundle, talk, OS.kill() the server
while a reply streams, the launcher's restart on new ports, the same session carried on from the store (the
finished turn kept, the half reply not stored), the stop with the Shutdown RPC; the server ending by itself when the
Godot process is killed (--parent-pid); failed starts retried with a doubling delay; two bundles side by side on
their own ports, each with its own key. No test asserts how fast anything is: the timeouts are generous.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from npc_sdk.server.launch import process_alive

from ..engine_tools import require_godot4
from ..server_process import stored_turns, wait_gone

pytestmark = pytest.mark.slow

GDSCRIPT = Path(__file__).resolve().parents[2] / "samples" / "godot" / "gdscript"
SCRIPTS = ("npc_server_process.gd", "npc_client_godot4.gd", "run_launcher_godot4.gd")
FIRST = "Keep my sword safe until I come back."
THIRD = "Do you still have my sword?"
RUN_S = 900  # one scenario, start to end, on two busy cores


def _link_tree(source: Path, target: Path) -> None:
    """Hard links where the chroot shares the file system (600 MB of bundle in no time), copies elsewhere."""

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, symlinks=True, copy_function=link_or_copy)


@pytest.fixture(scope="module")
def godot4_root() -> str:
    return require_godot4()  # first: skip before the bundle is built


@pytest.fixture(scope="module")
def chroot_bundle(godot4_root, bundle):
    """The bundle inside the chroot: (path as Godot sees it)."""
    inside = f"/tmp/npc-bundle-{uuid.uuid4().hex[:8]}"
    path = Path(godot4_root) / inside.lstrip("/")
    _link_tree(bundle, path)
    yield inside
    shutil.rmtree(path, ignore_errors=True)


class Game:
    """A throwaway Godot 4 project inside the chroot with the launcher, the client and the runner script."""

    def __init__(self, root: str, bundle: str) -> None:
        self.root, self.bundle = root, bundle
        self.inside = f"/tmp/npc-godot4-launcher-{uuid.uuid4().hex[:8]}"  # path as Godot sees it
        self.path = Path(root) / self.inside.lstrip("/")
        (self.path / "home").mkdir(parents=True)
        for name in SCRIPTS:
            shutil.copy(GDSCRIPT / name, self.path / name)
        (self.path / "project.godot").write_text(
            'config_version=5\n\n[application]\n\nconfig/name="npc-launcher"\n'
        )

    @property
    def saves(self) -> Path:
        return self.path / "saves"  # NPC_DATA_DIR, seen from outside the chroot

    def command(self, mode: str, **extra: str) -> list[str]:
        env = {
            "HOME": f"{self.inside}/home",
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "NPC_MODE": mode,
            "NPC_BUNDLE": self.bundle,
            "NPC_DATA_DIR": f"{self.inside}/saves",
            "NPC_TIMEOUT_S": str(RUN_S - 60),
            **extra,
        }
        # chroot and env exec: the process started here is Godot itself (its pid is the server's --parent-pid).
        return ["nice", "-n", "10", "chroot", self.root, "env", "-i", *(f"{k}={v}" for k, v in env.items()),
                "godot", "--headless", "--path", self.inside, "-s", "run_launcher_godot4.gd"]  # fmt: skip

    def run(self, mode: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(mode, **env), capture_output=True, text=True, timeout=RUN_S, check=False
        )

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


@pytest.fixture
def game(godot4_root, chroot_bundle):
    g = Game(godot4_root, chroot_bundle)
    yield g
    g.close()


def _events(stdout: str) -> list[dict]:
    """The runner's lines are JSON objects with an "event"; Godot's own lines never start with "{"."""
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert all("event" in e for e in events), stdout
    return events


def _of(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e["event"] == name]


def test_the_launcher_restarts_a_killed_server_and_the_session_carries_on(game):
    run = game.run("crash")
    events = _events(run.stdout)
    assert run.returncode == 0 and events[-1] == {"event": "result", "ok": True, "why": ""}, (
        run.stdout + run.stderr[-4000:]
    )
    assert _of(events, "engine")[0]["version"].startswith("4.")  # really Godot 4, from the chroot

    # The ready line was read and health checked (a call with the key) before "ready": ports the server picked.
    ready = _of(events, "ready")[0]
    assert ready["generation"] == 1 and 0 < ready["port"] < 65536 and 0 < ready["ws_port"] < 65536
    assert ready["address"] == f"ws://127.0.0.1:{ready['ws_port']}" and ready["port"] != ready["ws_port"]
    # A fresh 32-hex key; the game's own environment no longer holds it once the child has started.
    key = _of(events, "key")[0]
    assert key["chars"] == 32 and key["hex"] and re.fullmatch(r"[0-9a-f]{32}", key["key"]), key
    assert key["in_godot_env"] is False
    assert all(e["err"] == 0 and e["key_in_godot_env"] is False for e in _of(events, "started"))

    # The first turn finished; the second was cut by OS.kill() after its first delta.
    first = _of(events, "turn")[0]
    assert first["n"] == 1 and first["text"] == FIRST and first["reply"].strip()
    assert _of(events, "killing")[0]["pid"] == ready["pid"]
    cut = _of(events, "turn_failed")[0]
    assert cut["deltas"] >= 1 and cut["partial"], cut

    # The launcher saw the end, waited the first backoff step and started a new server on new ports.
    assert len(_of(events, "exited")) == 1
    assert [e["delay_ms"] for e in _of(events, "restarting")] == [500]
    assert not _of(events, "start_failed") and not _of(events, "unhealthy")
    back = _of(events, "back")[0]
    assert back["generation"] == 2 and back["pid"] != ready["pid"]
    assert back["address"] == f"ws://127.0.0.1:{back['ws_port']}"
    print(f"Godot launcher: the server was back {back['ms']} ms after the kill")

    # The same session after the restart: the finished turn is there, the killed half reply is not.
    after_restart, after_third = (e["turns"] for e in _of(events, "history"))
    assert after_restart == [{"user": FIRST, "reply": first["reply"]}], after_restart
    third = _of(events, "turn")[1]
    assert third["n"] == 3 and third["reply"].strip()
    assert after_third == [{"user": FIRST, "reply": first["reply"]}, {"user": THIRD, "reply": third["reply"]}]
    assert stored_turns(game.saves) == [FIRST, THIRD]  # the store on disk agrees

    # stop(): the Shutdown RPC with the key ended it; no server process is left.
    assert _of(events, "stop_result")[0]["how"] == "shutdown_rpc"
    assert _of(events, "stopped") == [{"event": "stopped", "name": ""}]
    assert not any(process_alive(pid) for pid in _of(events, "stop_result")[0]["pids"])
    assert "server: npc-sdk: stopped; store closed" in run.stderr.splitlines()
    assert not any(line.startswith("server: {") for line in run.stderr.splitlines())  # not passed on as a log


def test_the_server_ends_when_the_godot_process_that_launched_it_is_killed(game):
    proc = subprocess.Popen(
        game.command("hold"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    server_pid = 0
    try:
        deadline = time.monotonic() + RUN_S
        events: list[dict] = []
        while not _of(events, "holding"):
            assert time.monotonic() < deadline and proc.poll() is None, events
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line.startswith("{"):
                events.append(json.loads(line))
        holding = _of(events, "holding")[0]
        server_pid = holding["pid"]
        assert holding["godot_pid"] == proc.pid  # chroot and env exec'd: this process is Godot
        assert _of(events, "turn")[0]["text"] == FIRST
        assert process_alive(server_pid)

        # The launch: the bundle's executable with --port 0 --ws-port 0 --parent-pid <Godot>, the key only in its
        # environment.
        cmdline = Path(f"/proc/{server_pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[0].endswith(b"/npc-server")
        assert cmdline[cmdline.index(b"--parent-pid") + 1] == str(proc.pid).encode()
        assert [cmdline[cmdline.index(flag) + 1] for flag in (b"--port", b"--ws-port")] == [b"0", b"0"]
        key = _of(events, "key")[0]["key"].encode()
        assert key not in b" ".join(cmdline)
        assert b"NPC_SDK_API_KEY=" + key in Path(f"/proc/{server_pid}/environ").read_bytes().split(b"\0")

        proc.kill()  # the game crashes: nobody calls stop(), and the server's pipes lose their reader
        proc.wait(30)
        assert wait_gone(server_pid, 120), "the server outlived the Godot process that launched it"
        assert stored_turns(game.saves) == [FIRST]
    finally:
        proc.kill()
        if server_pid and process_alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)


def test_after_a_crash_failed_starts_are_retried_with_a_delay_that_doubles_up_to_8_s(game):
    # A stand-in for the bundle: the first start runs it, every later one fails at once.
    standin = game.path / "standin.sh"
    standin.write_text(
        "#!/bin/sh\n"
        f"n=$(cat {game.inside}/starts 2>/dev/null || echo 0)\n"
        f"echo $((n + 1)) > {game.inside}/starts\n"
        f'if [ "$n" = 0 ]; then exec {game.bundle}/npc-server "$@"; fi\n'
        'echo "stand-in: start $((n + 1)) fails" >&2\n'
        "exit 3\n"
    )
    standin.chmod(0o755)
    run = game.run("backoff", NPC_EXECUTABLE=f"{game.inside}/standin.sh")
    events = _events(run.stdout)
    assert run.returncode == 0 and events[-1] == {"event": "result", "ok": True, "why": ""}, (
        run.stdout + run.stderr[-4000:]
    )
    assert _of(events, "killing")[0]["pid"] == _of(events, "ready")[0]["pid"]
    assert len(_of(events, "exited")) == 1
    assert [e["delay_ms"] for e in _of(events, "restarting")] == [500, 1000, 2000, 4000, 8000, 8000]
    failed = [e["message"] for e in _of(events, "start_failed")]
    assert failed == [
        f"the server ended before it took calls (exit code 3)\n  stand-in: start {n} fails"
        for n in range(2, 7)
    ]  # the child's exit status and its last lines (stderr), read after it ended
    # stop() while the launcher waits for the next try: nothing runs, and no further start comes.
    assert _of(events, "stop_result") == [{"event": "stop_result", "how": "not_running"}]
    assert (game.path / "starts").read_text().strip() == "6"


def test_two_bundles_side_by_side_get_their_own_ports_and_keys(game):
    run = game.run("pair")
    events = _events(run.stdout)
    assert run.returncode == 0 and events[-1] == {"event": "result", "ok": True, "why": ""}, (
        run.stdout + run.stderr[-4000:]
    )
    ready = {e["name"]: e for e in _of(events, "ready")}
    assert set(ready) == {"a", "b"} and ready["a"]["pid"] != ready["b"]["pid"]
    ports = [ready[n][p] for n in ("a", "b") for p in ("port", "ws_port")]
    assert len(set(ports)) == 4 and all(0 < p < 65536 for p in ports), ready  # no clash
    # a's key on b's server
    assert _of(events, "cross_key") == [{"event": "cross_key", "code": "UNAUTHENTICATED"}]
    assert _of(events, "stop_a") == [{"event": "stop_a", "how": "shutdown_rpc"}]
    # b was stopped by dropping the last reference to its launcher (the game forgot stop()): ended before the game
    # went on (no signal fires from a launcher being freed).
    assert _of(events, "dropped_b") == [{"event": "dropped_b", "running": False}]
    assert [e["name"] for e in _of(events, "stopped")] == ["a"]
    assert not any(process_alive(ready[n]["pid"]) for n in ("a", "b"))
    stderr = run.stderr.splitlines()
    assert "server a: npc-sdk: stopped; store closed" in stderr
    assert not _of(events, "start_failed") and not _of(events, "exited")
    assert all((game.saves / n / "sessions.sqlite3").is_file() for n in ("a", "b"))
