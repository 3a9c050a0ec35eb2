"""decoder_prefill.onnx: the integer-GEMM graph an int4 export prefills with (export/build/quantize.py).

What it must keep: a position's result does not depend on how the prefill was cut or what else shared the call
(so a server that batches and chunks gives what a single Conversation gives), it runs only for prefills, and it
is at least as close to the fp32 model as the int4 graph it replaces there.
"""

from __future__ import annotations

import numpy as np
import pytest

from npc_sdk.demo import DEMO_PERSONA
from npc_sdk.personas.prompt import build_prompt
from npc_sdk.runtime.conversation import Conversation
from npc_sdk.runtime.generation import GenerationConfig
from npc_sdk.runtime.onnx_model import OnnxNpcModel

pytestmark = pytest.mark.slow


def _prompt_embeds(model: OnnxNpcModel, line: str) -> np.ndarray:
    return model.embed(build_prompt(model.tokenizer, DEMO_PERSONA, [], line, fmt=model.chat_format))


def _kl(want: np.ndarray, got: np.ndarray) -> float:
    def log_softmax(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64) - x.max()
        return x - np.log(np.exp(x).sum())

    p, q = log_softmax(want), log_softmax(got)
    return float(np.sum(np.exp(p) * (p - q)))


def test_prefills_run_on_the_integer_graph_and_steps_on_int4(runtime_int4, monkeypatch):
    assert runtime_int4.prefill_session is not None
    calls: list[tuple[str, int]] = []
    for name, session in (
        ("prefill", runtime_int4.prefill_session),
        ("decode", runtime_int4.decoder_session),
    ):
        original = session.run_with_iobinding

        def spy(binding, *args, name=name, original=original):
            calls.append((name, len(calls)))
            return original(binding, *args)

        monkeypatch.setattr(session, "run_with_iobinding", spy)
    runtime_int4.persona_kv.clear()
    with Conversation(runtime_int4, DEMO_PERSONA) as conv:
        done = conv.reply("Good evening, smith.", config=GenerationConfig(temperature=0.0, max_tokens=8))
    kinds = [name for name, _ in calls]
    # the prompt goes in on the integer graph (in chunks of PREFILL_CHUNK positions), every step on int4, and
    # once the reply is out, the next turn's opening (the reply's close, the next header) on the integer graph
    first_step = kinds.index("decode")
    assert first_step >= 1 and set(kinds[:first_step]) == {"prefill"} and kinds[-1] == "prefill"
    assert set(kinds[first_step:-1]) == {"decode"}
    assert kinds.count("decode") >= done.usage.completion_tokens - 1 > 0  # a step per token after the first


def test_a_prefill_cut_in_chunks_or_batched_gives_what_one_call_gives(runtime_int4):
    a = _prompt_embeds(runtime_int4, "Can you fix my sword before the frost sets in?")
    b = _prompt_embeds(runtime_int4, "What is that green slime doing on the path?")
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    runner = runtime_int4.separate_runner(3, prefill_graph=True)
    whole = runner.run(0, a[None])[0].copy()
    cut = 2 * n // 3
    runner.run(1, a[None, :cut])
    chunked = runner.run(1, a[None, cut:])[0].copy()
    runner.cache.lengths[:] = 0
    together = runner.run(0, np.stack([b, a, b]))[1].copy()
    # one scale per position: neighbours in the call change nothing but the float order of attention sums
    assert np.abs(chunked - whole).max() < 1e-3
    assert np.abs(together - whole).max() < 1e-3
    assert int(np.argmax(chunked)) == int(np.argmax(whole)) == int(np.argmax(together))


def test_the_integer_prefill_is_nearer_fp32_than_int4(runtime_int4, exported_fp32):
    fp32 = OnnxNpcModel.load(exported_fp32)
    lines = ("Hello! Can you fix my sword?", "Is the north road safe tonight?", "What do you sell, smith?")
    kl_prefill, kl_int4 = [], []
    for line in lines:
        embeds = _prompt_embeds(runtime_int4, line)[None]
        want = fp32.separate_runner(1, prefill_graph=False).run(0, embeds)[0]
        kl_prefill.append(_kl(want, runtime_int4.separate_runner(1, prefill_graph=True).run(0, embeds)[0]))
        kl_int4.append(_kl(want, runtime_int4.separate_runner(1, prefill_graph=False).run(0, embeds)[0]))
    assert np.mean(kl_prefill) < np.mean(kl_int4) / 2, (kl_prefill, kl_int4)


def test_the_prefill_graph_can_be_left_unloaded(exported_int4, runtime_int4):
    lean = OnnxNpcModel.load(exported_int4, prefill_graph=False)
    assert lean.prefill_session is None and lean.runner.prefill_session is None
    embeds = _prompt_embeds(lean, "Good evening, smith.")[None]
    got = lean.runner.run(lean.acquire_slot(), embeds)[0]
    # what the int4 graph gives for this prefill, not what the integer graph gives
    assert np.array_equal(got, runtime_int4.separate_runner(1, prefill_graph=False).run(0, embeds)[0])
    assert not np.array_equal(got, runtime_int4.separate_runner(1, prefill_graph=True).run(0, embeds)[0])


def test_a_chunked_prompt_never_leaves_one_position_for_a_call_of_its_own():
    from npc_sdk.runtime.batch import chunk_size

    assert [chunk_size(n, 32) for n in (1, 5, 32, 33, 34, 100)] == [1, 5, 32, 31, 32, 32]
    for length in range(2, 200):
        left, sizes = length, []
        while left:
            sizes.append(chunk_size(left, 32))
            left -= sizes[-1]
        assert 1 not in sizes and max(sizes) <= 32, (length, sizes)


def test_alone_a_long_prompt_goes_in_in_capped_calls():
    from npc_sdk.runtime.batch import ALONE_CALL, prefill_alone

    class Runner:  # records the width of each call
        def __init__(self) -> None:
            self.widths: list[int] = []

        def run(self, slot: int, embeds: np.ndarray) -> np.ndarray:
            self.widths.append(embeds.shape[1])
            return np.zeros((1, 4), np.float32)

    for length, widths in ((1100, [ALONE_CALL, ALONE_CALL, 76]), (ALONE_CALL + 1, [ALONE_CALL - 1, 2]), (40, [40])):
        runner = Runner()
        prefill_alone(runner, 0, np.zeros((length, 8), np.float32))
        assert runner.widths == widths


def test_alone_a_prompt_goes_in_in_one_call(runtime_int4, monkeypatch):
    """With nobody else decoding there is no stream to keep going, so the prompt is one wide call (faster than
    chunks), and its first logits are what the chunks give."""
    from npc_sdk.runtime.batch import BatchGenerator, chunk_size

    class FirstLogits:  # a reply state that keeps the prompt's logits and ends there
        def __init__(self) -> None:
            self.seen: list[np.ndarray] = []

        def accept(self, logits: np.ndarray) -> None:
            self.seen.append(logits.copy())

        def drain(self) -> list:
            return []

    embeds = _prompt_embeds(runtime_int4, "Can you fix my sword before the frost sets in? " * 4)
    assert len(embeds) > 64
    runner = runtime_int4.separate_runner(1, prefill_graph=True)
    done = 0
    while done < len(embeds):  # cut as a batch cuts it while others decode
        size = chunk_size(len(embeds) - done, 32)
        chunked = runner.run(0, embeds[None, done : done + size])[0].copy()
        done += size
    calls: list[int] = []
    original = runtime_int4.runner.run
    monkeypatch.setattr(
        runtime_int4.runner, "run", lambda *a, **k: calls.append(a[1].shape[1]) or original(*a, **k)
    )
    state = FirstLogits()
    slot = runtime_int4.acquire_slot()
    try:
        BatchGenerator(runtime_int4).add(slot, embeds, state)
    finally:
        runtime_int4.release_slot(slot)
    assert calls == [len(embeds)]
    first = state.seen[0]
    assert np.abs(first - chunked).max() < 1e-3 and int(np.argmax(first)) == int(np.argmax(chunked))
