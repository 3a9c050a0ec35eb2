"""Speed of the PyTorch reference on the benchmark prompt: load time, time to first token, decode tokens/s."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from npc_sdk.demo import BENCH_NEW_TOKENS, DEMO_PERSONA, bench_prompt, scene_path
from npc_sdk.runtime.decode_loop import timed_greedy
from npc_sdk.runtime.generation import GenerationConfig

from ..model.reference import NpcModel, TorchLogitsSource


def _greedy_run(model: NpcModel, ids: list[int], new_tokens: int) -> tuple[float, float]:
    """(ms to the first token, decode tok/s) for plain greedy decoding that ignores EOS."""
    return timed_greedy(TorchLogitsSource(model.decoder), model.embedding_table[np.asarray(ids)], new_tokens)


def bench_reference(
    repeats: int = 3, log: Callable[[str], None] = print, decoder: str | None = None
) -> dict[str, float | int | str]:
    torch.set_grad_enabled(False)
    t0 = time.perf_counter()
    model = NpcModel.load(decoder=decoder, log=lambda _msg: None)
    load_s = time.perf_counter() - t0
    prompt = bench_prompt(model.decoder.chat_format)
    ids = model.decoder.tokenizer.encode(prompt, add_special_tokens=False).ids
    _greedy_run(model, ids, 4)  # warm-up: first-call allocations are not what a running server pays
    ttft, tps = zip(*(_greedy_run(model, ids, BENCH_NEW_TOKENS) for _ in range(repeats)), strict=True)

    # The whole pipeline for a turn with a screenshot: image + text + role encoders, fusion, prompt, prefill.
    cfg = GenerationConfig(max_tokens=1, temperature=0.0)
    screenshot = scene_path("meadow_slimes.png").read_bytes()
    model.reply("warm up", persona=DEMO_PERSONA, screenshot=screenshot, config=cfg)
    full = [
        model.reply(
            "Hello! Can you fix my sword? I see a dragon flying over the forge.",
            persona=DEMO_PERSONA,
            screenshot=screenshot,
            config=cfg,
        ).timings.ttft_ms
        for _ in range(repeats)
    ]
    figures: dict[str, float | int | str] = {
        "engine": "pytorch-reference-fp32",
        "torch_threads": torch.get_num_threads(),
        "load_s": round(load_s, 2),
        "prompt_tokens": len(ids),
        "new_tokens": BENCH_NEW_TOKENS,
        "ttft_ms": round(statistics.median(ttft), 1),
        "decode_tokens_per_second": round(statistics.median(tps), 1),
        "ttft_ms_with_screenshot": round(statistics.median(full), 1),
        "fusion": model.fusion_info.describe(),
    }
    return figures
