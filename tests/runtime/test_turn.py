"""One turn preparation (runtime/turn.py) for every path: the stateless stream applies game state and actions as a
conversation does, decodes best of N, and keeps the prompt within the context."""

from __future__ import annotations

from pathlib import Path

import pytest

from npc_sdk.demo import DEMO_PERSONA
from npc_sdk.personas.files import load_persona
from npc_sdk.personas.prompt import Turn
from npc_sdk.runtime.conversation import Conversation
from npc_sdk.runtime.events import Action, Delta, Done
from npc_sdk.runtime.generation import GenerationConfig
from npc_sdk.runtime.scene import SceneEntity
from npc_sdk.runtime.turn import prepare_turn
from npc_sdk.runtime.turn_model import TurnModel

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "personas"
GREEDY = GenerationConfig(temperature=0.0, max_tokens=12)
LINE = "Please heal Ser Aldric, he is bleeding!"
KNIGHT = [SceneEntity("knight", "Ser Aldric")]
LOW = {"player_health": "low"}


def test_the_runtime_model_is_a_turn_model(runtime_int4):
    assert isinstance(runtime_int4, TurnModel)


def test_a_stateless_turn_applies_state_and_actions_as_a_conversation_does(runtime_int4):
    ysolde = load_persona(SAMPLES / "ysolde.toml")
    events = list(runtime_int4.stream(LINE, persona=ysolde, scene=KNIGHT, state=LOW, config=GREEDY))
    assert (
        isinstance(events[0], Action) and events[0].name == "heal" and events[0].args == {"patient": "knight"}
    )
    assert isinstance(events[-1], Done) and all(isinstance(e, Delta) for e in events[1:-1])
    runtime_int4.persona_kv.clear()  # the conversation prefills its whole prompt too, as the stateless turn did
    with Conversation(runtime_int4, ysolde) as conv:
        action, done = conv.turn(LINE, scene=KNIGHT, state=LOW, config=GREEDY)
    assert action == events[0]
    assert done.token_ids == events[-1].token_ids  # the same prompt: state note, action note, scene note
    assert "Game state: player health: low" in conv.history[-1].context
    # without the state the action's condition cannot hold, statelessly too
    plain = list(runtime_int4.stream(LINE, persona=ysolde, scene=KNIGHT, config=GREEDY))
    assert not any(isinstance(e, Action) for e in plain)


def test_a_stateless_turn_decodes_best_of_n_on_spare_slots(runtime_int4):
    free = runtime_int4.free_slots
    cfg = GenerationConfig(temperature=0.9, max_tokens=12, seed=3, candidates=2)
    events = list(runtime_int4.stream("Can you sharpen my sword?", persona=DEMO_PERSONA, config=cfg))
    done = events[-1]
    assert isinstance(done, Done) and len(done.candidates) == 2 and done.candidates[0].text == done.text
    assert "".join(e.text for e in events if isinstance(e, Delta)) == done.text
    assert runtime_int4.free_slots == free


def test_the_oldest_turns_leave_a_prompt_that_would_overflow_the_context(runtime_int4):
    story = "The river rose in the night and took the old mill, the bridge and half the orchard with it. " * 4
    history = [Turn(f"Tell me more ({i}).", story) for i in range(60)]
    turn = prepare_turn(runtime_int4, DEMO_PERSONA, history, "And then?", config=GREEDY, use_prefix=False)
    assert turn.window_start > 0
    assert turn.target.length <= runtime_int4.context_length - GREEDY.max_tokens
    assert len(turn.embeds) == turn.target.length  # no cache held: the whole prompt is prefilled
    shorter = prepare_turn(
        runtime_int4, DEMO_PERSONA, history, "And then?", config=GREEDY, use_prefix=False, window_start=5
    )
    assert shorter.window_start == max(5, turn.window_start)
