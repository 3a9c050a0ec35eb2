"""Actions and emotions on the real model: the decision, its conditions, cooldowns and arguments, determinism,
the labelled sets' goals, and the gRPC stream (action before the first delta, emotion in Done, state checked)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from npc_sdk.behaviour_eval import _decide, _personas, _rows, evaluate_emotions, score_actions
from npc_sdk.errors import InvalidInputError
from npc_sdk.personas.files import load_persona
from npc_sdk.personas.persona import Persona
from npc_sdk.runtime.conversation import Conversation
from npc_sdk.runtime.emotion import EMOTIONS
from npc_sdk.runtime.events import Action, Delta, Done
from npc_sdk.runtime.game_state import check_state, state_note
from npc_sdk.runtime.generation import GenerationConfig
from npc_sdk.runtime.scene import SceneEntity

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "personas"
QUICK = GenerationConfig(temperature=0.0, max_tokens=6)


@pytest.mark.parametrize(
    "action, field",
    [
        ({"name": "Open Shop", "description": "d", "examples": ["x"]}, "persona.actions[0].name"),
        ({"name": "open_shop", "description": "", "examples": ["x"]}, "persona.actions[0].description"),
        ({"name": "open_shop", "description": "d", "examples": []}, "persona.actions[0].examples"),
        (
            {"name": "a", "description": "d", "examples": ["x"], "params": {"to": {"type": "place"}}},
            "persona.actions[0].params.to.type",
        ),
        (
            {"name": "a", "description": "d", "examples": ["x"], "params": {"to": {"type": "string"}}},
            "persona.actions[0].params.to.choices",
        ),
        (
            {"name": "a", "description": "d", "examples": ["x"], "cooldown_turns": -1},
            "persona.actions[0].cooldown_turns",
        ),
        (
            {"name": "a", "description": "d", "examples": ["x"], "when": {"hp": 3}},
            "persona.actions[0].when.hp",
        ),
        ({"name": "a", "description": "d", "examples": ["x"], "colour": 1}, "persona.actions[0].colour"),
    ],
)
def test_action_declarations_are_checked_by_field(action, field):
    with pytest.raises(InvalidInputError) as exc:
        Persona.from_dict({"name": "x", "actions": [action]})
    assert exc.value.field == field


def test_game_state_is_checked_and_reaches_the_prompt_as_one_note():
    assert state_note(check_state({"player_health": "low", "quest_stage": "3"})) == (
        "(Game state: player health: low; quest stage: 3.)\n"
    )
    for bad, field in [
        ({"hp": ""}, "state['hp']"),
        ({"9lives": "x"}, "state"),
        ({"k": "x" * 65}, "state['k']"),
    ]:
        with pytest.raises(InvalidInputError) as exc:
            check_state(bad)
        assert exc.value.field == field
    with pytest.raises(InvalidInputError, match="over 16"):
        check_state({f"k{i}": "v" for i in range(17)})


@pytest.mark.slow
def test_the_labelled_test_split_meets_the_goals(runtime_int4):
    """Held out from the calibration (tune split): precision >= 0.9, recall >= 0.8, only declared names."""
    rows = _rows("actions.jsonl")
    personas = _personas(SAMPLES, rows)
    test = [r for r in rows if r["split"] == "test"]
    assert len(test) >= 300 and sum(r["action"] is None for r in test) >= 100
    predicted = [_decide(runtime_int4, personas[r["persona"]], r) for r in test]
    scores = score_actions(test, predicted)
    assert scores["precision"] >= 0.9 and scores["recall"] >= 0.8, scores
    for row, p in zip(test, predicted, strict=True):
        if p is not None:
            assert p.name in {a.name for a in personas[row["persona"]].actions}


@pytest.mark.slow
def test_conditions_cooldowns_and_arguments(runtime_int4):
    ysolde, brakka = load_persona(SAMPLES / "ysolde.toml"), load_persona(SAMPLES / "brakka.toml")
    tom, mirela = load_persona(SAMPLES / "old_tom.toml"), load_persona(SAMPLES / "mirela.toml")

    def first(persona, line, **kw):
        with Conversation(runtime_int4, persona) as conv:
            return conv.turn(line, config=QUICK, use_prefix=False, **kw)[0]

    knight = [SceneEntity("knight", "Ser Aldric")]
    healed = first(
        ysolde, "Please heal Ser Aldric, he is bleeding!", state={"player_health": "low"}, scene=knight
    )
    assert healed == Action("heal", {"patient": "knight"}, healed.confidence)
    assert (
        first(ysolde, "Please heal me, I'm bleeding!", state={"player_health": "full"}) is None
    )  # `when` fails
    assert first(ysolde, "Please heal me, I'm bleeding!") is None  # no state: the condition cannot hold
    assert first(tom, "Take me to the Keep.").args == {"destination": "Ashen Keep"}
    assert first(tom, "Will you row me across?").args == {"destination": "Mirewood"}  # the declared default
    assert first(mirela, "Rent me a room for four nights.").args == {"nights": 4.0}
    with Conversation(runtime_int4, brakka) as conv:  # cooldown_turns = 1: not on the very next turn
        fired = [conv.turn("Sharpen my sword, please.", config=QUICK, use_prefix=False)[0] for _ in range(3)]
    assert [a.name if a else None for a in fired] == ["sharpen_weapon", None, "sharpen_weapon"]


@pytest.mark.slow
def test_the_action_comes_first_and_the_turn_is_deterministic(runtime_int4):
    brakka = load_persona(SAMPLES / "brakka.toml")
    runs = []
    for _ in range(2):
        with Conversation(runtime_int4, brakka) as conv:
            events = list(
                conv.stream("What do you have for sale?", config=QUICK.with_(temperature=0.7, seed=5))
            )
        runs.append(events)
    kinds = [type(e) for e in runs[0]]
    assert kinds[0] is Action and kinds[-1] is Done and Delta in kinds and kinds.count(Action) == 1
    assert runs[0][0] == runs[1][0] and runs[0][-1].emotion == runs[1][-1].emotion  # same seed: same choices
    assert runs[0][-1].emotion.label in EMOTIONS and 0 <= runs[0][-1].emotion.intensity <= 1
    context = conv.history[-1].context
    assert "You agree and open the shop" in context  # the reply is told to go along with it


@pytest.mark.slow
def test_emotion_accuracy_on_the_labelled_replies(runtime_int4):
    figures = evaluate_emotions(runtime_int4, log=lambda _m: None)
    assert figures["replies"] >= 200 and figures["accuracy"] >= 0.6, figures
    assert set(figures["confusion"]) == set(EMOTIONS)


@pytest.mark.slow
def test_grpc_stream_carries_the_action_first_and_the_emotion(exported_int4, tmp_path):
    from npc_sdk.client import Client

    from ..server_process import ServerProcess

    with (
        ServerProcess(exported_int4, tmp_path, "--personas", str(SAMPLES)) as server,
        Client(server.address, timeout=120) as client,
    ):
        session = client.create_session_from_file("old_tom")
        with client.chat(session.session_id, "Ferry me over to Mirewood, please.", max_tokens=8) as stream:
            events = list(stream)
        assert isinstance(events[0], Action) and events[0].args == {"destination": "Mirewood"}
        assert isinstance(events[-1], Done) and events[-1].emotion is not None
        with pytest.raises(grpc.RpcError) as err:
            list(client.chat(session.session_id, "Hi", state={"bad key": "x"}))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "state" in err.value.details()
        again = client.get_session(session.session_id)
        assert len(again.turns) == 1 and again.persona.actions[0].name == "ferry_across"  # nothing lost
