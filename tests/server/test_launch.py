"""A game launching the server as its child: ready line, key in the environment, parent watch, Shutdown RPC."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import grpc
import pytest

from npc_sdk.client import Client
from npc_sdk.demo import DEMO_PERSONA
from npc_sdk.server.launch import process_alive

from ..server_process import ServerProcess, stored_turns

pytestmark = pytest.mark.slow

KEY = "launch-key-7f3a9c"


def _ready(proc: ServerProcess) -> dict:
    """The JSON ready line: the only line a launcher has to parse (it follows the "serving" line the helper waits
    for, so give the pump a moment to read it)."""
    deadline = time.monotonic() + 60
    while not any(line.startswith("{") for line in proc.output) and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [json.loads(line) for line in proc.output if line.startswith("{")]
    assert len(lines) == 1, proc.output
    return lines[0]


def test_ready_line_key_from_the_environment_and_shutdown_rpc(exported_int4, tmp_path):
    with ServerProcess(
        exported_int4, tmp_path, "--threads", "1", "--nice", "5", env={"NPC_SDK_API_KEY": KEY}
    ) as proc:
        ready = _ready(proc)
        assert ready["ready"] is True and ready["port"] == proc.port and ready["pid"] == proc.proc.pid
        assert os.getpriority(os.PRIO_PROCESS, proc.proc.pid) >= 5  # the game's threads come first
        cmdline = Path(f"/proc/{proc.proc.pid}/cmdline").read_bytes()
        assert KEY.encode() not in cmdline  # the key never shows in `ps`
        with Client(proc.address, timeout=60) as anonymous:
            with pytest.raises(grpc.RpcError) as err:
                anonymous.shutdown()
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with Client(proc.address, api_key=KEY, timeout=120) as c:
            sid = c.create_session(DEMO_PERSONA).session_id
            c.say(sid, "Keep my sword safe.", max_tokens=8)
            assert c.shutdown() == 0
        assert proc.proc.wait(60) == 0
        time.sleep(0.1)
        assert any("store closed" in line for line in proc.output)
    assert stored_turns(tmp_path) == ["Keep my sword safe."]


def test_shutdown_is_refused_by_a_server_without_a_key(server_without_key):
    with Client(server_without_key.address, timeout=60) as c:
        with pytest.raises(grpc.RpcError) as err:
            c.shutdown()
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "API key" in err.value.details()
        assert c.list_sessions() is not None  # it still serves
    assert server_without_key.proc.poll() is None


@pytest.fixture()
def server_without_key(exported_int4, tmp_path):
    with ServerProcess(exported_int4, tmp_path) as proc:
        yield proc


def test_the_server_stops_when_the_game_that_launched_it_ends(exported_int4, tmp_path):
    game = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        with ServerProcess(exported_int4, tmp_path, "--parent-pid", str(game.pid)) as proc:
            with Client(proc.address, timeout=120) as c:
                sid = c.create_session(DEMO_PERSONA).session_id
                c.say(sid, "Remember me.", max_tokens=8)
            game.kill()
            game.wait(30)
            assert not process_alive(game.pid)
            assert proc.proc.wait(60) == 0  # a graceful stop, not a crash
            time.sleep(0.1)
            assert any(f"parent process {game.pid} has ended" in line for line in proc.output)
            assert any("store closed" in line for line in proc.output)
        assert stored_turns(tmp_path) == ["Remember me."]
    finally:
        game.kill()


def test_process_alive_tells_a_running_process_from_an_ended_one():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    assert process_alive(child.pid)
    child.kill()
    child.wait(30)
    assert not process_alive(child.pid)
    assert not process_alive(0)


def test_the_parent_watch_stops_the_server_when_the_game_took_its_stdout_pipe_with_it(tmp_path):
    """A game that dies closes the read end of the server's stdout: the goodbye line must not get in the way of the
    stop (print() raised BrokenPipeError there, and the server ran on forever), nor fail the exit."""
    script = tmp_path / "watch.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, sys
            from npc_sdk.server.launch import say, watch_parent

            async def main():
                stop = asyncio.Event()
                asyncio.create_task(watch_parent(int(sys.argv[1]), stop.set, 0.05))
                await asyncio.wait_for(stop.wait(), 30)
                say("npc-sdk: stopped; store closed")
                sys.stderr.write("STOPPED\\n")

            asyncio.run(main())
            """
        )
    )
    game = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    root = Path(__file__).resolve().parents[2]
    try:
        watcher = subprocess.Popen(
            [sys.executable, str(script), str(game.pid)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=root,
            text=True,
        )
        time.sleep(1.0)
        watcher.stdout.close()  # the game's end of the pipe goes with the game
        game.kill()
        game.wait(30)
        assert watcher.wait(60) == 0
        assert "STOPPED" in watcher.stderr.read()
    finally:
        game.kill()


def _silent_websocket(port: int, close_first: bool) -> socket.socket:
    """A WebSocket client that stops reading after the handshake (and, with close_first, after a close frame): a
    game that stops the server as it quits, no longer polling its own clients."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert sock.recv(4096).startswith(b"HTTP/1.1 101")
    if close_first:
        mask, code = b"\x01\x02\x03\x04", (1000).to_bytes(2, "big")  # a close frame, masked as clients must
        sock.sendall(b"\x88\x82" + mask + bytes(b ^ mask[i] for i, b in enumerate(code)))
    return sock


def test_with_a_websocket_gateway_the_ready_line_names_its_port_and_silent_clients_do_not_hold_the_stop(
    exported_int4, tmp_path
):
    """A GDScript or web launcher connects to the gateway: its port is in the ready line, which comes once the gateway
    accepts. Clients that no longer read must not keep the stopping server for websockets' closing timeouts (10 s
    for one that never answers the close frame, 20 s for one that sent its own and never closed the connection)."""
    from websockets.sync.client import connect

    with ServerProcess(exported_int4, tmp_path, "--ws-port", "0", env={"NPC_SDK_API_KEY": KEY}) as proc:
        deadline = time.monotonic() + 30  # the helper returns at the log lines; the ready line follows them
        while not any(line.startswith("{") for line in proc.output) and time.monotonic() < deadline:
            time.sleep(0.05)
        ready = _ready(proc)
        assert ready["ws_port"] == proc.ws_port and ready["port"] == proc.port
        gateway_line = next(i for i, line in enumerate(proc.output) if "websocket gateway" in line)
        assert gateway_line < proc.output.index(next(line for line in proc.output if line.startswith("{")))
        silent = [_silent_websocket(proc.ws_port, close_first) for close_first in (False, True)]
        with connect(proc.ws_url) as ws:
            ws.send(json.dumps({"id": "s", "method": "Shutdown", "request": {}, "apiKey": KEY}))
            assert json.loads(ws.recv(60)) == {"id": "s", "response": {}}
        started = time.monotonic()
        assert proc.proc.wait(60) == 0
        assert time.monotonic() - started < 8, "the server waited for the silent clients"
        for sock in silent:
            sock.close()
