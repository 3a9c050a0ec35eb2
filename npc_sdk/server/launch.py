"""What a game needs to launch the server as a child process: a ready line, a parent watch, a lower priority.

The game starts `npc-sdk serve --port 0 --parent-pid <its pid> --threads 1 --nice 10` (or the bundled executable)
with a fresh key in NPC_SDK_API_KEY, reads stdout until the one JSON line `{"ready": true, "port": N, ...}`, and
connects. When the game dies without stopping it, the server notices within `PARENT_POLL_S` and stops as on
SIGTERM (turns in flight finish, the store is flushed).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable

API_KEY_ENV = "NPC_SDK_API_KEY"  # the key a launcher passes: never on the command line, where `ps` shows it
PARENT_POLL_S = 0.5


def ready_line(port: int, described: str, ws_port: int = 0, studio_port: int = 0) -> str:
    """The one stdout line a launcher waits for (JSON, so no launcher parses prose). With `--ws-port` it also names
    the WebSocket gateway's port, already accepting: a GDScript or web client's launcher connects there; with
    `--studio`, the studio page's port."""
    line = {"ready": True, "port": port, "pid": os.getpid(), "model": described}
    if ws_port:
        line["ws_port"] = ws_port
    if studio_port:
        line["studio_port"] = studio_port
    return json.dumps(line)


def process_alive(pid: int) -> bool:
    """Whether process `pid` still runs (Linux, macOS and Windows)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return _windows_alive(pid)
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by another user
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A dead child its parent has not reaped yet still answers signal 0; Linux says so in /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _windows_alive(pid: int) -> bool:
    import ctypes

    synchronize, wait_timeout = 0x00100000, 0x102
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(synchronize, False, pid)
    if not handle:
        return False
    try:
        return kernel32.WaitForSingleObject(handle, 0) == wait_timeout
    finally:
        kernel32.CloseHandle(handle)


def say(line: str) -> None:
    """One line on stdout for the launcher. Once the launcher is gone, nothing more is printed, and nothing fails.

    A game that reads the server's stdout through a pipe takes the pipe's read end with it when it dies: a plain
    print() then raises BrokenPipeError (Python ignores SIGPIPE), which in watch_parent kept the server from ever
    stopping, and at exit the interpreter's last flush would fail too.
    """
    try:
        print(line, flush=True)
    except (OSError, ValueError):
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # stdout for the rest of the process


async def watch_parent(pid: int, on_gone: Callable[[], None], poll_s: float = PARENT_POLL_S) -> None:
    """Call `on_gone` once process `pid` has ended (polling: the same on every OS, no signals to arrange)."""
    while process_alive(pid):
        await asyncio.sleep(poll_s)
    say(f"npc-sdk: parent process {pid} has ended; stopping")
    on_gone()


def lower_priority(niceness: int) -> None:
    """Give the game's threads the CPU first: POSIX niceness, or Windows' below-normal priority class."""
    if niceness <= 0:
        return
    if sys.platform == "win32":
        import ctypes

        below_normal = 0x00004000
        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        kernel32.SetPriorityClass(kernel32.GetCurrentProcess(), below_normal)
        return
    os.nice(min(niceness, 19))
