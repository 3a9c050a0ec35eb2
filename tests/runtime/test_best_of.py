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
