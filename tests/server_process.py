"""A real `npc-sdk serve` process on loopback for tests: start, wait for its port, stop with a signal."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


class ServerProcess:
    def __init__(self, model: Path, data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.model, self.data_dir, self.extra = model, data_dir, extra
        self.env = env or {}  # added to this process's environment
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.ws_port = 0  # the WebSocket gateway's port, when started with --ws-port
        self.studio_port = 0  # the studio page's port, when started with --studio (from the ready line)
        self.output: list[str] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    def start(self, timeout: float = 120) -> ServerProcess:
        cmd = [
            sys.executable,
            "-m",
            "npc_sdk.cli",
            "serve",
            "--model",
            str(self.model),
            "--port",
            "0",
            "--data-dir",
            str(self.data_dir),
            *self.extra,
        ]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        ready = threading.Event()
        wants_ws = "--ws-port" in self.extra
        wants_studio = "--studio" in self.extra

        def pump() -> None:
            assert self.proc and self.proc.stdout
            for line in self.proc.stdout:
                self.output.append(line)
                m = re.search(r" on 127\.0\.0\.1:(\d+)$", line.strip())
                if m and "websocket gateway" in line:
                    self.ws_port = int(m[1])
                elif m and line.startswith("npc-sdk serving"):
                    self.port = int(m[1])
                elif line.startswith('{"ready"'):
                    self.studio_port = json.loads(line).get("studio_port", 0)
                if self.port and (self.ws_port or not wants_ws) and (self.studio_port or not wants_studio):
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.time() + timeout
        while not ready.wait(0.2):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("server did not start:\n" + "".join(self.output))
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        time.sleep(0.1)  # let the pump thread read the last lines
        return code

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.stop(signal.SIGKILL)


def stored_turns(data_dir: Path) -> list[str]:
    """The player lines of every turn in the data folder's SQLite store, oldest first (what survived)."""
    import sqlite3

    db = sqlite3.connect(data_dir / "sessions.sqlite3")
    try:
        return [row[0] for row in db.execute("SELECT user FROM turns ORDER BY rowid")]
    finally:
        db.close()


def wait_gone(pid: int, timeout: float) -> bool:
    """Whether process `pid` has ended within `timeout` seconds."""
    from npc_sdk.server.launch import process_alive

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.2)
    return False
