"""`npc-sdk bench --model DIR`: speed of the onnxruntime runtime on the fixed benchmark prompt, as figures.

decode_tokens_per_second  60-token persona prompt, 60 new greedy tokens (EOS ignored), median of the repeats
ttft_ms_cold              that prompt from an empty cache to the first token
ttft_ms_prefix_reuse      a ~20-token player line in a running conversation (text encoder + fusion + prefill)
ttft_ms_with_screenshot   the same with a screenshot (image encoder too)
peak_rss_mb               the process's peak resident memory

`npc-sdk bench --role-words` prints instead how often sampled replies name the persona's role words at each
bias weight (the whole-word bias of word_bias.py): a rate from sampled text, so a benchmark figure, not a test.
"""

from __future__ import annotations

import json
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from .demo import BENCH_NEW_TOKENS, BENCH_PROMPT, DEMO_PERSONA, scene_path
from .personas.persona import Persona
from .runtime.decode_loop import timed_greedy
from .runtime.generation import GenerationConfig
from .runtime.onnx_model import OnnxNpcModel, SlotSource

PLAYER_LINE = "The old bridge north of the mine collapsed last night. Could you forge new iron braces for it?"
OPENING_LINE = "Good evening, smith. Cold night for it."


def _greedy_timing(model: OnnxNpcModel, ids: list[int], new_tokens: int) -> tuple[float, float]:
    slot = model.acquire_slot()
    try:
        return timed_greedy(SlotSource(model, slot), model.embed_ids(ids), new_tokens)
    finally:
        model.release_slot(slot)


def _turn_ttft(model: OnnxNpcModel, screenshot: bytes | None) -> tuple[float, int, int]:
    from .runtime.conversation import Conversation

    cfg = GenerationConfig(temperature=0.0, max_tokens=24)
    with Conversation(model, DEMO_PERSONA) as conv:
        conv.reply(OPENING_LINE, config=cfg)
        done = conv.reply(PLAYER_LINE, screenshot=screenshot, config=cfg.with_(max_tokens=1))
    return done.timings.ttft_ms, done.usage.prompt_tokens - done.usage.cached_tokens, done.usage.cached_tokens


def role_word_rates(
    model: OnnxNpcModel,
    persona: Persona,
    line: str,
    *,
    weights: Sequence[float] = (0.0, 1.0, 3.0, 6.0, 10.0),
    seeds: Iterable[int] = range(20),
    max_tokens: int = 40,
) -> dict[float, float]:
    """Share of sampled replies that name one of the persona's role words, with every role word at each weight."""
    seeds = list(seeds)
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in persona.role_words) + r")", re.IGNORECASE)
    rates = {}
    for weight in weights:
        biased = replace(persona, role_words={w: weight for w in persona.role_words})
        hits = 0
        for seed in seeds:
            config = GenerationConfig(temperature=0.8, seed=seed, max_tokens=max_tokens)
            hits += bool(
                pattern.search(model.reply(line, persona=biased, config=config, use_prefix=False).text)
            )
        rates[weight] = round(hits / len(seeds), 3)
    return rates


def run_peer(command: str) -> dict[str, float]:
    """Run the onnxruntime-genai peer script and parse its one-line result."""
    out = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=1800)
    match = re.search(r"decode ([\d.]+) tok/s, ttft cold (\d+) ms", out.stdout)
    if not match:
        raise RuntimeError(f"peer benchmark printed no figures: {out.stdout[-500:]} {out.stderr[-500:]}")
    return {"decode_tokens_per_second": float(match[1]), "ttft_ms_cold": float(match[2])}


def bench_model(
    path: Path,
    *,
    repeats: int = 3,
    threads: int | None = None,
    reference: bool = True,
    peer: str | None = None,
) -> dict:
    t0 = time.perf_counter()
    model = OnnxNpcModel.load(path, threads=threads)
    load_s = time.perf_counter() - t0
    ids = model.tokenizer.encode(BENCH_PROMPT).ids
    _greedy_timing(model, ids, 4)  # warm-up
    ttft, tps = zip(*(_greedy_timing(model, ids, BENCH_NEW_TOKENS) for _ in range(repeats)), strict=True)
    shot = scene_path("meadow_slimes.png").read_bytes()
    _turn_ttft(model, shot)  # warm-up of the encoders
    reuse = [_turn_ttft(model, None) for _ in range(repeats)]
    with_shot = [_turn_ttft(model, shot) for _ in range(repeats)]
    figures: dict = {
        "engine": f"npc-sdk onnxruntime {model.folder.precision}",
        "model": str(path),
        "load_s": round(load_s, 2),
        "prompt_tokens": len(ids),
        "new_tokens": BENCH_NEW_TOKENS,
        "decode_tokens_per_second": round(statistics.median(tps), 1),
        "ttft_ms_cold": round(statistics.median(ttft), 1),
        "ttft_ms_prefix_reuse": round(statistics.median(r[0] for r in reuse), 1),
        "prefix_reuse_new_positions": reuse[0][1],
        "prefix_reuse_cached_positions": reuse[0][2],
        "ttft_ms_with_screenshot": round(statistics.median(r[0] for r in with_shot), 1),
    }
    if reference:
        figures["reference"] = _reference_figures(repeats)
    if "decode_tokens_per_second" in figures.get("reference", {}):
        figures["decode_speedup_vs_reference"] = round(
            figures["decode_tokens_per_second"] / figures["reference"]["decode_tokens_per_second"], 2
        )
    if peer:
        # Shared machines drift: measure ours again right after the peer and compare the peer with the mean
        # of the two, so neither side gets the quieter minute.
        figures["peer_onnxruntime_genai"] = run_peer(peer)
        after = statistics.median(_greedy_timing(model, ids, BENCH_NEW_TOKENS)[1] for _ in range(repeats))
        figures["decode_tokens_per_second_after_peer"] = round(after, 1)
        ours = (figures["decode_tokens_per_second"] + after) / 2
        figures["decode_ratio_vs_peer"] = round(
            ours / figures["peer_onnxruntime_genai"]["decode_tokens_per_second"], 2
        )
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return figures


def _reference_figures(repeats: int) -> dict:
    """The PyTorch reference's figures from a child process, so its memory does not count in ours."""
    code = (
        "import json; from npc_export.bench_reference import bench_reference; "
        f"print('JSON' + json.dumps(bench_reference(repeats={repeats})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("JSON")), None)
    if out.returncode != 0 or line is None:
        return {"error": (out.stderr or out.stdout)[-300:]}
    return json.loads(line[4:])
