"""Best of N on the real int4 runtime: candidates decode as one batch, the critic picks, only the choice streams."""

from __future__ import annotations

import pytest

from npc_sdk.demo import DEMO_PERSONA
from npc_sdk.errors import InvalidInputError
from npc_sdk.runtime.best_of import candidate_configs
from npc_sdk.runtime.conversation import Conversation
from npc_sdk.runtime.events import Delta, Done
from npc_sdk.runtime.generation import GenerationConfig

pytestmark = pytest.mark.slow

THREE = GenerationConfig(temperature=0.9, max_tokens=24, seed=11, candidates=3)


def test_candidate_configs_differ_only_by_seed():
    configs = candidate_configs(THREE)
    assert [c.seed for c in configs] == [11, 12, 13]
    assert {c.with_(seed=0) for c in configs} == {THREE.with_(seed=0)}
    assert candidate_configs(THREE.with_(candidates=1)) == [THREE.with_(candidates=1)]
    # greedy candidates would all be the same reply: greedy decodes one, whatever candidates says
    assert candidate_configs(THREE.with_(temperature=0.0)) == [THREE.with_(temperature=0.0)]


def test_candidates_out_of_range_name_the_field():
    with pytest.raises(InvalidInputError, match="generation.candidates"):
        GenerationConfig(candidates=9)
    with pytest.raises(InvalidInputError, match="generation.candidates"):
        GenerationConfig(candidates=0)


def test_only_the_chosen_candidate_streams_and_it_scores_best(runtime_int4):
    free = len(runtime_int4._free_slots)
    with Conversation(runtime_int4, DEMO_PERSONA) as conv:
        events = list(conv.stream("Can you sharpen my sword?", config=THREE))
        deltas = [e for e in events if isinstance(e, Delta)]
        done = events[-1]
        assert isinstance(done, Done)
        assert "".join(d.text for d in deltas) == done.text
        assert len(done.candidates) >= 2  # of three, the pick waits for two to end and drops the third
        assert done.candidates[0].text == done.text
        assert done.candidates[0].score == max(c.score for c in done.candidates)
        assert conv.history[-1].reply == done.text
        # the chosen candidate's KV state is the conversation's: the next turn reuses the whole prompt and reply
        held = conv.cached_positions
        nxt = conv.reply("And how much?", config=THREE.with_(candidates=1))
        assert nxt.usage.cached_tokens >= held - 1
    assert len(runtime_int4._free_slots) == free  # the spare slots went back


def test_the_pick_waits_for_all_of_two_and_half_of_more():
    from npc_sdk.runtime.batch import settle_at

    assert [settle_at(n) for n in range(1, 9)] == [1, 2, 2, 2, 3, 3, 4, 4]


def test_best_of_n_uses_what_slots_are_spare(runtime_int4):
    taken = runtime_int4.try_acquire_slots(
        len(runtime_int4._free_slots) - 2
    )  # leave the turn's slot + one spare
    try:
        with Conversation(runtime_int4, DEMO_PERSONA) as conv:
            done = conv.reply("What do you make here?", config=THREE.with_(candidates=4))
            assert len(done.candidates) == 2
    finally:
        for slot in taken:
            runtime_int4.release_slot(slot)


def test_a_model_opened_with_the_defaults_decodes_the_default_best_of_n(exported_int4):
    """The Python API's `OnnxNpcModel.load(folder)` holds enough slots for `GenerationConfig()`'s candidates: one
    slot would quietly answer with one candidate."""
    from npc_sdk.runtime.batch import settle_at
    from npc_sdk.runtime.onnx_model import OnnxNpcModel

    model = OnnxNpcModel.load(exported_int4)
    default = GenerationConfig()
    assert len(model._free_slots) >= default.candidates
    with Conversation(model, DEMO_PERSONA) as conv:
        done = conv.reply("What do you make here?", config=default.with_(seed=5))
    assert len(done.candidates) >= settle_at(default.candidates)


def _stream_by_step(model, monkeypatch, line: str, config: GenerationConfig) -> list[tuple[int, object]]:
    """The turn's events, each with the number of batch steps run when it came out."""
    from npc_sdk.runtime.batch import BatchGenerator

    steps = [0]
    original = BatchGenerator.step

    def counted(self):
        steps[0] += 1
        return original(self)

    monkeypatch.setattr(BatchGenerator, "step", counted)
    with Conversation(model, DEMO_PERSONA) as conv:
        return [(steps[0], event) for event in conv.stream(line, config=config)]


def test_what_every_candidate_says_streams_before_the_pick(runtime_int4, monkeypatch):
    # nearly greedy: the four candidates open with the same words, so those need not wait for the pick
    config = GenerationConfig(temperature=0.05, max_tokens=24, seed=3, candidates=4)
    timed = _stream_by_step(runtime_int4, monkeypatch, "Can you sharpen my sword?", config)
    done_step, done = timed[-1]
    assert isinstance(done, Done) and len(done.candidates) >= 2
    deltas = [(step, e) for step, e in timed if isinstance(e, Delta)]
    assert deltas[0][0] < done_step - 1  # out steps before the candidates ended and the critic chose
    assert "".join(e.text for _, e in deltas) == done.text == done.candidates[0].text
    said = ""
    for _, e in deltas:
        said += e.text
        assert e.snapshot == said
    assert done.timings.ttft_ms < done.timings.total_ms  # the first delta's time, not the pick's


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_candidates_that_disagree_stream_only_the_chosen_text(runtime_int4, monkeypatch, seed):
    config = GenerationConfig(temperature=1.2, max_tokens=24, seed=seed, candidates=4)
    timed = _stream_by_step(runtime_int4, monkeypatch, "What do you make here, and who buys it?", config)
    done = timed[-1][1]
    assert isinstance(done, Done)
    assert "".join(e.text for _, e in timed if isinstance(e, Delta)) == done.text == done.candidates[0].text


def test_bench_candidates_times_the_first_word_and_the_whole_reply(exported_int4):
    from npc_sdk.bench import bench_candidates

    figures = bench_candidates(exported_int4, counts=(1, 2), seeds=(1,))
    for n in (1, 2):
        assert 0 < figures[f"ttft_ms_median_n{n}"] <= figures[f"whole_reply_ms_median_n{n}"]
    # the batch's cost is when its chosen reply is whole, against one reply's, not its first word
    ratio = figures["whole_reply_ms_median_n2"] / figures["whole_reply_ms_median_n1"]
    assert figures["batch_over_one_reply_n2"] == pytest.approx(ratio, abs=0.01)
