"""`npc-sdk bench --scenes`: what a scene of three NPCs costs, against one NPC talking alone, in the same run.

A `npc-sdk serve` process is started on loopback with the model. Three NPC sessions form a scene, and Converse has
them talk for six lines, five times (greedy, up to 40 tokens a line). Figures (medians over the five rounds):

- second_speaker_first_token_ms: from the first line's done to the second speaker's first delta, at the client
  (the second NPC's prefill of what it heard, plus choosing it);
- scene_tokens_per_second: all the lines' tokens over the round's wall time, as the client sees it;
- alone_tokens_per_second: one NPC's Chat turns, the same lengths, in the same server, for the ratio;
- kv_reused: of the prompt positions of the scene's lines, the share the sessions' KV state already held.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .client import Client

NPCS = (
    {"name": "Brakka", "description": "The dwarf blacksmith of Emberfall, gruff and proud of her forge."},
    {"name": "Mira", "description": "The innkeeper of the Crooked Lantern, warm and nosy."},
    {"name": "Old Gus", "description": "A fisherman who has seen everything twice, and says so."},
)
TOPIC = "A stranger asks what is new in town."
GREEDY = {"max_tokens": 40, "temperature": 0.0, "max_sentences": 2}


def serve_locally(model: Path, data: Path) -> tuple[subprocess.Popen[str], str]:
    """`npc-sdk serve` on a free loopback port with this model and data folder; its process and address."""
    args = [
        sys.executable,
        "-m",
        "npc_sdk.cli",
        "serve",
        "--model",
        str(model),
        "--port",
        "0",
        "--data-dir",
        str(data),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.search(r" on 127\.0\.0\.1:(\d+)$", line.strip())
        if m and "websocket" not in line:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # keep draining
            return proc, f"127.0.0.1:{m.group(1)}"
    raise RuntimeError(f"npc-sdk serve ended before it was ready (exit {proc.wait()})")


def _round(client: Client, scene_id: str) -> dict:
    started = time.perf_counter()
    first_done = second_delta = None
    tokens = prompt = cached = lines = 0
    for event in client.converse(scene_id, 6, topic=TOPIC, **GREEDY):
        now = time.perf_counter()
        if event.event.HasField("delta") and lines == 1 and second_delta is None:
            second_delta = now
        if event.event.HasField("done"):
            done = event.event.done
            lines += 1
            tokens += done.usage.completion_tokens
            prompt += done.usage.prompt_tokens
            cached += done.usage.cached_tokens
            if lines == 1:
                first_done = now
    wall = time.perf_counter() - started
    assert first_done is not None and second_delta is not None
    return {
        "second_ms": (second_delta - first_done) * 1000,
        "tok_s": tokens / wall,
        "tokens": tokens,
        "prompt": prompt,
        "cached": cached,
    }


def bench_scenes(model: Path, rounds: int = 5, log=print) -> dict:
    with tempfile.TemporaryDirectory() as data:
        proc, address = serve_locally(model, Path(data))
        try:
            with Client(address, timeout=300) as client:
                results = []
                for r in range(rounds):
                    ids = [client.create_session(npc).session_id for npc in NPCS]
                    scene_id = client.create_scene(ids).scene_id
                    results.append(_round(client, scene_id))
                    log(
                        f"  round {r + 1}/{rounds}: {results[-1]['tokens']} tokens, {results[-1]['tok_s']:.1f} tok/s"
                    )
                alone = []
                sid = client.create_session(NPCS[0]).session_id
                for _ in range(rounds):
                    started = time.perf_counter()
                    tokens = sum(
                        client.say(sid, line, **GREEDY).usage.completion_tokens
                        for line in ("What is new in town?", "And at the inn?", "Anything at the docks?")
                    )
                    alone.append(tokens / (time.perf_counter() - started))
        finally:
            proc.terminate()
            proc.wait(60)
    scene_tok_s = statistics.median(r["tok_s"] for r in results)
    alone_tok_s = statistics.median(alone)
    return {
        "npcs": len(NPCS),
        "lines_per_round": 6,
        "rounds": rounds,
        "second_speaker_first_token_ms": round(statistics.median(r["second_ms"] for r in results), 1),
        "scene_tokens_per_second": round(scene_tok_s, 1),
        "alone_tokens_per_second": round(alone_tok_s, 1),
        "scene_over_alone": round(scene_tok_s / alone_tok_s, 2),
        "kv_reused": round(sum(r["cached"] for r in results) / max(sum(r["prompt"] for r in results), 1), 3),
    }
