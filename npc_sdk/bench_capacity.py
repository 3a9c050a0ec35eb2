"""`npc-sdk bench --capacity`: what N talking sessions get against the kernel's ceiling, measured in one run.

1. The ceiling: decode-only steps of a batch of N sequences in the cache slots, each with ~300 positions of KV
   (a persona and a few turns), one onnxruntime call a step, as the scheduler makes them; tokens per second, and the
   same for one sequence. Nothing else runs: no sampling, no encoders, no prefill.
2. The load: `npc-sdk serve` on loopback with the same model, then `npc-sdk loadtest` (N sessions, each its own
   persona turn by turn with a screenshot, a few turns of up to 40 tokens): tokens per second in all, and the first
   delta's percentiles.

The figure issue 31 asks for is `aggregate_over_ceiling` (goal >= 0.8, with p95 first delta <= 400 ms).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from .bench import bench_prompt
from .bench_scenes import serve_locally
from .loadtest import run_loadtest
from .runtime.onnx_model import OnnxNpcModel

KV_REPEATS = 5  # the 60-token benchmark prompt five times: ~300 positions a sequence


def decode_ceiling(folder: Path, batch: int = 8, steps: int = 20, repeats: int = 3) -> dict:
    """Tokens per second of decode-only steps for `batch` sequences at once, and for one."""
    model = OnnxNpcModel.load(folder, slots=batch)
    ids = model.tokenizer.encode(bench_prompt(model.chat_format), add_special_tokens=False).ids
    prompt = model.embed_ids(ids * KV_REPEATS)
    rates = {}
    for n in sorted({1, batch}):
        for slot in range(n):
            model.cache.rewind(slot, 0)
            model.runner.run(slot, prompt[None])
        tokens = model.embed_ids(np.full(n, ids[0], dtype=np.int64))[:, None, :]
        runs = []
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(steps):
                model.runner.run(0, tokens)
            runs.append(steps * n / (time.perf_counter() - started))
        rates[n] = statistics.median(runs)
    return {
        "kv_positions_per_sequence": len(ids) * KV_REPEATS,
        "ceiling_tokens_per_second": round(rates[batch], 1),
        "one_sequence_tokens_per_second": round(rates[1], 1),
    }


def bench_capacity(folder: Path, sessions: int = 8, turns: int = 3, max_tokens: int = 40, log=print) -> dict:
    log(f"  the ceiling: decode-only steps of {sessions} sequences")
    figures: dict = {"sessions": sessions, **decode_ceiling(folder, batch=sessions)}
    with tempfile.TemporaryDirectory() as data:
        proc, address = serve_locally(folder, Path(data))
        try:
            log(f"  the load: {sessions} sessions x {turns} turns through {address}")
            load = run_loadtest(address, sessions=sessions, turns=turns, max_tokens=max_tokens, server_pid=proc.pid)
        finally:
            proc.terminate()
            proc.wait(60)
    figures.update({f"load_{k}": v for k, v in load.items() if k not in ("error_samples",)})
    figures["aggregate_over_ceiling"] = round(
        load["aggregate_tokens_per_second"] / figures["ceiling_tokens_per_second"], 2
    )
    return figures
