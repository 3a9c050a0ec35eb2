"""`npc-sdk bench --launch BUNDLE`: what a game feels from the bundled server (docs/shipping.md).

- launch_to_ready_ms: from starting the executable to its JSON ready line, warm disk (median of the repeats) and,
  where this process may drop the page cache (root on Linux), cold;
- rss_idle_mb / rss_talking_mb: the server's resident memory after start, and its peak after talking;
- a game loop: 60 Hz frames of fixed CPU work (numpy, as a game's simulation would use a core), frame times with the
  NPC idle and while it talks without pause, at `--threads 1` and `--threads 2`: p50, p95, and the p95 increase.
  The server runs as the launchers start it (`--nice 10`). The loop is a process of its own with one BLAS thread,
  as a game's main thread is: inside this process it would wait on the talking client's GIL, which no engine has.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from .client import Client
from .demo import DEMO_PERSONA

KEY = "bench-launch"
NICE = 10  # what the launchers pass
FRAME_S = 1 / 60
LINES = ("Can you sharpen my sword?", "What is that on the meadow?", "Tell me about the mine.")


def _start(exe: Path, data: Path, threads: int) -> tuple[subprocess.Popen[str], dict, float]:
    env = {**os.environ, "NPC_SDK_API_KEY": KEY}
    args = [str(exe), "--port", "0", "--data-dir", str(data), "--threads", str(threads), "--nice", str(NICE)]
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{"):
            ready = json.loads(line)
            elapsed = (time.perf_counter() - started) * 1000
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # keep draining
            return proc, ready, elapsed
    raise RuntimeError(f"{exe} ended before it was ready (exit {proc.wait()})")


def _stop(proc: subprocess.Popen[str], port: int) -> None:
    with Client(f"127.0.0.1:{port}", api_key=KEY, timeout=60) as c:
        c.shutdown()
    proc.wait(60)


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _drop_page_cache() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


_GAME_LOOP = """
import json, sys, time
import numpy as np
seconds, frame_s = float(sys.argv[1]), float(sys.argv[2])
def work():
    a = np.ones((160, 160), dtype=np.float32)
    for _ in range(6):
        a = a @ a * 1e-3
times, end = [], time.perf_counter() + seconds
next_frame = time.perf_counter()
while time.perf_counter() < end:
    t0 = time.perf_counter()
    work()
    times.append((time.perf_counter() - t0) * 1000)
    next_frame += frame_s
    time.sleep(max(0.0, next_frame - time.perf_counter()))
print(json.dumps(times))
"""


def _game_loop(seconds: float) -> list[float]:
    """Frame times (ms) of a 60 Hz loop doing fixed work each frame, in a process of its own."""
    one_thread = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _GAME_LOOP, str(seconds), str(FRAME_S)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **one_thread},
    )
    return [float(t) for t in json.loads(done.stdout)]


def _talk_while(port: int, stop: threading.Event, replies: list[str]) -> None:
    with Client(f"127.0.0.1:{port}", api_key=KEY, timeout=120) as c:
        sid = c.create_session(DEMO_PERSONA).session_id
        i = 0
        while not stop.is_set():
            replies.append(c.say(sid, LINES[i % len(LINES)], max_tokens=40).text)
            i += 1


def bench_launch(bundle: Path, data: Path, repeats: int = 3, seconds: float = 10.0) -> dict:
    exe = bundle / ("npc-server.exe" if sys.platform == "win32" else "npc-server")
    figures: dict[str, object] = {"bundle": str(bundle), **json.loads((bundle / "bundle.json").read_text())}
    warm = []
    for _ in range(repeats):
        proc, ready, ms = _start(exe, data, 1)
        warm.append(ms)
        _stop(proc, ready["port"])
    figures["launch_to_ready_ms_warm"] = round(statistics.median(warm), 1)
    if _drop_page_cache():
        proc, ready, ms = _start(exe, data, 1)
        figures["launch_to_ready_ms_cold"] = round(ms, 1)
        _stop(proc, ready["port"])
    for threads in (1, 2):
        proc, ready, _ = _start(exe, data, threads)
        try:
            time.sleep(1.0)
            if threads == 1:
                figures["rss_idle_mb"] = round(_rss_mb(proc.pid), 1)
            idle = _game_loop(seconds)
            stop, replies = threading.Event(), []
            talker = threading.Thread(target=_talk_while, args=(ready["port"], stop, replies))
            talker.start()
            time.sleep(1.0)  # the first reply is under way
            talking = _game_loop(seconds)
            stop.set()
            talker.join()
            if threads == 1:
                figures["rss_talking_peak_mb"] = round(_rss_mb(proc.pid, "VmHWM"), 1)
        finally:
            _stop(proc, ready["port"])
        p95_idle, p95_talk = float(np.percentile(idle, 95)), float(np.percentile(talking, 95))
        figures[f"threads{threads}_frame_ms_p50_idle"] = round(float(np.median(idle)), 2)
        figures[f"threads{threads}_frame_ms_p95_idle"] = round(p95_idle, 2)
        figures[f"threads{threads}_frame_ms_p50_talking"] = round(float(np.median(talking)), 2)
        figures[f"threads{threads}_frame_ms_p95_talking"] = round(p95_talk, 2)
        figures[f"threads{threads}_p95_increase_pct"] = round((p95_talk / p95_idle - 1) * 100, 1)
        figures[f"threads{threads}_replies_during_loop"] = len(replies)
    return figures
