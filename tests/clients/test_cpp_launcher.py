"""npc::ServerProcess (samples/cpp/npc_server_process.*): the C++ launcher a game starts and supervises the server with.

The end-to-end tests run npc_launch_demo against the real exported model: start, chat, SIGKILL mid-reply, the
supervisor's restart on a new port, the same session carried on from the store, the stop; and the server ending by
itself when the launching process is killed (--parent-pid). The others run npc_server_process_check on stand-in
servers (shell scripts) to check the launch arguments, the key, the backoff, a failed start and the stop sequence
without a model. No test asserts how fast anything is: the timeouts are generous.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from npc_sdk.server.launch import process_alive

from ..server_process import stored_turns, wait_gone
from .conftest import run_tool

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FIRST = "Keep my sword safe until I come back."
STORY = "Tell me the whole story of your forge, from the very beginning."
THIRD = "Do you still have my sword?"


def _events(stdout: str) -> list[dict]:
    """Every stdout line of the demo and of the check program is one JSON object with an "event"."""
    events = [json.loads(line) for line in stdout.splitlines()]
    assert all("event" in e for e in events), stdout
    return events


def _of(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e["event"] == name]


def _serve(model: Path) -> list[str]:
    return [sys.executable, "-m", "npc_sdk.cli", "serve", "--model", str(model)]


def test_launcher_restarts_a_killed_server_and_the_session_carries_on(cpp_build, exported_int4, tmp_path):
    data = tmp_path / "data"
    demo = [cpp_build / "npc_launch_demo", "--data-dir", data, "--threads", "1", "--timeout-ms", "600000"]
    run = subprocess.run(
        [str(c) for c in [*demo, "--", *_serve(exported_int4)]],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=1200,
        cwd=ROOT,
        check=False,
    )
    events = _events(run.stdout)
    assert run.returncode == 0 and events[-1] == {"event": "result", "ok": True, "why": ""}, (
        run.stdout + run.stderr[-4000:]
    )

    # The ready line was read (twice: first start and restart), on ports the server picked, by two processes.
    ready = _of(events, "ready")
    assert [e["generation"] for e in ready] == [1, 2], run.stdout
    assert all(0 < e["port"] < 65536 for e in ready) and ready[0]["pid"] != ready[1]["pid"]
    assert not any(re.match(r"server: \{.*\"ready\"", line) for line in run.stderr.splitlines())  # not a log
    # A fresh 32-hex key, in the child's environment and not on its command line.
    assert _of(events, "key") == [
        {"event": "key", "chars": 32, "hex": True, "in_command_line": False, "in_environment": True}
    ]
    assert _of(events, "health") == [{"event": "health", "status": "OK"}]

    # The first turn finished; the second was cut by SIGKILL after its first delta.
    first = _of(events, "turn")[0]
    assert first["n"] == 1 and first["text"] == FIRST and first["reply"].strip()
    assert _of(events, "killing")[0]["pid"] == ready[0]["pid"]
    cut = _of(events, "turn_failed")[0]
    assert cut["status"] != "OK" and cut["deltas"] >= 1 and cut["partial"], cut

    # The supervisor saw the crash and restarted after the first backoff step.
    exited = _of(events, "exited")
    assert len(exited) == 1 and exited[0]["generation"] == 1 and exited[0]["signal"] == signal.SIGKILL, exited
    assert [e["delay_ms"] for e in _of(events, "restarting")] == [500]
    back = _of(events, "back")[0]
    assert back["generation"] == 2 and back["address"] == f"127.0.0.1:{ready[1]['port']}"
    print(f"C++ launcher: the server was back {back['ms']} ms after the kill")

    # The same session after the restart: the finished turn is there, the killed half-reply is not.
    after_restart, after_third = (e["turns"] for e in _of(events, "history"))
    assert after_restart == [{"user": FIRST, "reply": first["reply"]}], after_restart
    third = _of(events, "turn")[1]
    assert third["n"] == 3 and third["reply"].strip()
    assert after_third == [{"user": FIRST, "reply": first["reply"]}, {"user": THIRD, "reply": third["reply"]}]
    assert stored_turns(data) == [FIRST, THIRD]  # the store on disk agrees: no STORY

    # Stop(): the Shutdown RPC with the key ended it gracefully; no server process is left.
    assert _of(events, "stop_result") == [
        {"event": "stop_result", "how": "shutdown_rpc", "exit_code": 0, "signal": 0}
    ]
    assert _of(events, "gone")[0]["alive"] is False
    assert not process_alive(ready[0]["pid"]) and not process_alive(ready[1]["pid"])
    assert "server: npc-sdk: stopped; store closed" in run.stderr.splitlines()


def test_the_server_ends_when_the_process_that_launched_it_is_killed(cpp_build, exported_int4, tmp_path):
    data = tmp_path / "data"
    cmd = [cpp_build / "npc_launch_demo", "--hold", "--data-dir", data, "--", *_serve(exported_int4)]
    game = subprocess.Popen(
        [str(c) for c in cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in game.stdout], daemon=True).start()
    server_pid = 0
    try:
        deadline = time.monotonic() + 600
        events = []
        while not _of(events, "holding"):
            assert time.monotonic() < deadline and game.poll() is None, events
            try:
                events.append(json.loads(lines.get(timeout=1)))
            except queue.Empty:
                continue
        server_pid = _of(events, "holding")[0]["pid"]
        assert _of(events, "turn")[0]["text"] == FIRST
        assert process_alive(server_pid)
        cmdline = Path(f"/proc/{server_pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[cmdline.index(b"--parent-pid") + 1] == str(game.pid).encode()

        game.kill()  # the game crashes: nobody calls Stop(), and the server's stdout pipe loses its reader
        game.wait(30)
        assert wait_gone(server_pid, 120), "the server outlived the process that launched it"
        assert stored_turns(data) == [FIRST]
    finally:
        game.kill()
        if server_pid and process_alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)


# ---- the supervisor on stand-in servers (no model) -------------------------------------------------------------


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


READY = 'echo "{\\"ready\\": true, \\"port\\": 1, \\"pid\\": $$, \\"model\\": \\"stand-in\\"}"\n'


def _check(
    cpp_build: Path, *args: object, timeout: float = 180
) -> tuple[subprocess.CompletedProcess, list[dict]]:
    run = run_tool([cpp_build / "npc_server_process_check", *args], timeout)
    return run, _events(run.stdout)


def test_launch_arguments_key_and_a_backoff_that_doubles_up_to_its_cap(cpp_build, tmp_path):
    crash = _script(
        tmp_path,
        "crash.sh",
        'echo "args: $*"\necho "key: $NPC_SDK_API_KEY" >&2\n' + READY + "sleep 0.2\nexit 3\n",
    )
    data = tmp_path / "saves"
    backoff = ["--first-backoff-ms", 50, "--max-backoff-ms", 200, "--healthy-after-ms", 600000]
    run, events = _check(cpp_build, "--until-restarts", 5, *backoff, "--data-dir", data, "--", crash, "serve")
    assert run.returncode == 0, run.stdout + run.stderr
    check_pid = _of(events, "check")[0]["pid"]
    key = _of(events, "started")[0]["key"]
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    logs = [e["line"] for e in _of(events, "log")]
    args = [line for line in logs if line.startswith("args: ")]
    assert args[0] == f"args: serve --port 0 --parent-pid {check_pid} --data-dir {data}"
    assert len(set(args)) == 1 and len(args) >= 5  # every restart: the same command, the same data dir
    assert {line for line in logs if line.startswith("key: ")} == {f"key: {key}"}  # stderr is read as well
    assert not any(line.startswith("{") for line in logs)  # the ready line is not passed on as a log
    ready = _of(events, "ready")
    assert [e["generation"] for e in ready][:5] == [1, 2, 3, 4, 5] and all(e["port"] == 1 for e in ready)
    assert all(e["exit_code"] == 3 and e["signal"] == 0 for e in _of(events, "exited"))
    assert [e["delay_ms"] for e in _of(events, "restarting")] == [50, 100, 200, 200, 200]


def test_the_backoff_starts_over_after_a_child_ran_long_enough(cpp_build, tmp_path):
    crash = _script(tmp_path, "crash.sh", READY + "sleep 0.5\nexit 3\n")
    backoff = ["--first-backoff-ms", 50, "--max-backoff-ms", 200, "--healthy-after-ms", 200]
    run, events = _check(cpp_build, "--until-restarts", 3, *backoff, "--", crash)
    assert run.returncode == 0, run.stdout + run.stderr
    assert [e["delay_ms"] for e in _of(events, "restarting")] == [50, 50, 50]


def test_failed_health_checks_get_the_server_killed_and_restarted(cpp_build, tmp_path):
    # Its ready line names port 1, where nothing answers: every health check fails.
    hung = _script(tmp_path, "hung.sh", READY + "while :; do sleep 0.1; done\n")
    run, events = _check(
        cpp_build, "--until-restarts", 1, "--health-interval-ms", 100, "--unhealthy-after", 2, "--", hung
    )
    assert run.returncode == 0, run.stdout + run.stderr
    names = [e["event"] for e in events if e["event"] in ("unhealthy", "exited", "restarting")]
    assert names[:4] == ["unhealthy", "unhealthy", "exited", "restarting"], names
    assert "UNAVAILABLE" in _of(events, "unhealthy")[0]["message"]
    assert _of(events, "exited")[0]["signal"] == signal.SIGKILL


@pytest.mark.parametrize(
    "body, command, message",
    [
        (
            'echo "loading..."\necho "{\\"ready\\": false}"\nexec sleep 30\n',
            None,
            "no ready line within 1000 ms",
        ),
        (
            'echo "ModuleNotFoundError: No module named npc_sdk" >&2\nexit 1\n',
            None,
            "the server ended before its ready line (exit status 1)",
        ),
        (None, "/nonexistent/npc-server", "cannot run /nonexistent/npc-server: No such file or directory"),
        (None, "no-such-npc-server-here", "cannot run no-such-npc-server-here: not found in PATH"),
    ],
)
def test_a_start_without_a_ready_line_fails_with_the_reason_and_the_last_lines(
    cpp_build, tmp_path, body, command, message
):
    server = command or _script(tmp_path, "server.sh", body)
    run, events = _check(cpp_build, "--ready-timeout-ms", 1000, "--", server)
    assert run.returncode == 1, run.stdout + run.stderr
    error = _of(events, "start_error")[0]["message"]
    assert error.startswith(message), error
    if body:  # what the server wrote comes with the error
        assert body.splitlines()[0].split('"')[1] in error, error
    assert not _of(events, "ready")


def test_stop_sends_sigterm_then_sigkill_and_the_output_never_blocks_the_server(cpp_build, tmp_path):
    # Obeys SIGTERM, after 20,000 log lines (over 1 MB: many times a pipe's buffer) before its ready line.
    flood = (
        "trap 'echo bye; exit 0' TERM\ni=0\n"
        'while [ $i -lt 20000 ]; do echo "log line $i ........................................"; i=$((i+1)); done\n'
    )
    obedient = _script(tmp_path, "obedient.sh", flood + READY + "while :; do sleep 0.1; done\n")
    run, events = _check(cpp_build, "--terminate-grace-ms", 30000, "--", obedient)
    assert run.returncode == 0, run.stdout + run.stderr
    logs = [e["line"] for e in _of(events, "log")]
    assert sum(line.startswith("log line ") for line in logs) == 20000 and "bye" in logs
    # The Shutdown RPC finds no server on port 1, so Stop() goes on to SIGTERM, which the stand-in obeys.
    assert _of(events, "stop_result") == [
        {"event": "stop_result", "how": "terminate", "exit_code": 0, "signal": 0}
    ]

    stubborn = _script(tmp_path, "stubborn.sh", "trap '' TERM\n" + READY + "while :; do sleep 0.1; done\n")
    run, events = _check(cpp_build, "--terminate-grace-ms", 500, "--", stubborn)
    assert run.returncode == 0, run.stdout + run.stderr
    assert _of(events, "stop_result") == [
        {"event": "stop_result", "how": "kill", "exit_code": -1, "signal": signal.SIGKILL}
    ]
    pid = _of(events, "started")[0]["pid"]
    assert not process_alive(pid)
