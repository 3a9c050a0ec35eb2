"""`npc-sdk bench --prefill-stall`: what a talking NPC feels while another NPC's long prompt is prefilled.

One NPC decodes (greedy, never stopping) while a second turn's prompt of `positions` positions (a long card's first
turn) joins the batch. Figures for the talker's gaps between two tokens while that prompt goes in, with the prompt
prefilled in chunks interleaved with the decode steps (what ships, batch.py) and in one call (how it was), in
the same run, alternated: the largest gap, the p95 gap, the gap before the prompt arrived, and how long the
long prompt took to its first token either way.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from .demo import DEMO_PERSONA
from .personas.prompt import build_prompt
from .runtime.batch import BatchGenerator
from .runtime.decode_loop import ReplyState
from .runtime.decoder_runner import PREFILL_CHUNK
from .runtime.generation import GenerationConfig
from .runtime.onnx_model import OnnxNpcModel

TALKER_LINE = "Tell me the whole story of the forge, from the beginning."
WARM_STEPS = 8  # decode steps before the long prompt arrives (the gap a talker normally sees)


def _never_ending(model: OnnxNpcModel, tokens: int) -> ReplyState:
    config = GenerationConfig(temperature=0.0, max_tokens=tokens, max_sentences=0, repetition_penalty=1.0)
    return ReplyState(
        tokenizer=model.tokenizer,
        config=config,
        sampler=model.sampler(DEMO_PERSONA, config),
        eos_id=-1,  # EOS does not end it: the talker must talk through the whole prefill
        prompt_tokens=0,
    )


def _one_run(model: OnnxNpcModel, talker: np.ndarray, long_prompt: np.ndarray, chunk: int) -> dict:
    slots = [model.acquire_slot(), model.acquire_slot()]
    try:
        batch = BatchGenerator(model)
        batch.chunk = chunk
        state = _never_ending(model, 1000)
        batch.add(slots[0], talker, state)
        stamps = []
        for _ in range(WARM_STEPS):
            batch.step()
            stamps.append(time.perf_counter())
        before = float(np.median(np.diff(stamps))) * 1000
        added = time.perf_counter()
        batch.add(slots[1], long_prompt, _never_ending(model, 1))
        during = [added]
        while slots[1] in batch.pending:
            count = len(state.generated)
            batch.step()
            if len(state.generated) > count:
                during.append(time.perf_counter())
        first_token_ms = (time.perf_counter() - added) * 1000
    finally:
        for s in slots:
            model.release_slot(s)
    gaps = np.diff(during) * 1000 if len(during) > 1 else np.asarray([first_token_ms])
    return {
        "max_gap_ms": float(gaps.max()),
        "p95_gap_ms": float(np.percentile(gaps, 95)),
        "gap_before_ms": before,
        "long_prompt_first_token_ms": first_token_ms,
    }


def bench_prefill_stall(path, positions: int = 2000, repeats: int = 3, threads: int | None = None) -> dict:
    model = OnnxNpcModel.load(path, slots=2, threads=threads)
    talker = model.embed(build_prompt(model.tokenizer, DEMO_PERSONA, [], TALKER_LINE))
    filler = model.tokenizer.encode("The records of Emberfall tell of wells, mills and gates. " * 200).ids
    long_prompt = model.embed_ids(filler[:positions])
    runs: dict[str, list[dict]] = {"chunked": [], "one_call": []}
    for _ in range(repeats):  # alternated, so a noisy moment hurts both
        runs["chunked"].append(_one_run(model, talker, long_prompt, PREFILL_CHUNK))
        runs["one_call"].append(_one_run(model, talker, long_prompt, 10**9))
    figures: dict[str, float | int] = {
        "positions": positions,
        "prefill_chunk": PREFILL_CHUNK,
        "repeats": repeats,
    }
    for mode, results in runs.items():
        for key in results[0]:
            figures[f"{mode}_{key}"] = round(statistics.median(r[key] for r in results), 1)
    figures["max_gap_ratio_one_call_vs_chunked"] = round(
        figures["one_call_max_gap_ms"] / max(figures["chunked_max_gap_ms"], 1e-6), 2
    )
    return figures
