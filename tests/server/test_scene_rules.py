"""Who answers in a scene, and what each NPC hears (server/scene_rules.py), without a model."""

from __future__ import annotations

import numpy as np
import pytest

from npc_sdk.errors import InvalidInputError
from npc_sdk.personas.prompt import MAX_TEXT_CHARS
from npc_sdk.server.scene_rules import (
    SceneState,
    check_members,
    check_speaker,
    choose_speaker,
    named_in,
    said,
)


def _scene() -> SceneState:
    return SceneState("s", ["b", "m", "g"], {"b": "Brakka Ironhand", "m": "Mira", "g": "Old Gus"})


ROLES = {"b": np.array([1.0, 0.0, 0.0]), "m": np.array([0.0, 1.0, 0.0]), "g": np.array([0.0, 0.0, 1.0])}
CALM = {"b": 0.5, "m": 0.5, "g": 0.5}


def test_the_npc_named_in_the_line_answers_first_mention_first():
    scene = _scene()
    assert choose_speaker("Mira, is Brakka in?", scene, ROLES["b"], ROLES, CALM) == "m"
    assert choose_speaker("ask ironhand, not mira", scene, ROLES["m"], ROLES, CALM) == "b"  # any name part
    assert choose_speaker("Gus? Hello?", scene, ROLES["b"], ROLES, CALM) == "g"
    assert named_in("I miramar the sea", scene.names) is None  # whole words only


def test_else_relevance_plus_talkativeness_and_never_the_one_who_spoke():
    scene = _scene()
    assert choose_speaker("What about the forge?", scene, ROLES["b"], ROLES, CALM) == "b"
    chatty = {"b": 0.0, "m": 0.0, "g": 1.0}
    assert choose_speaker("Anyone?", scene, np.array([0.3, 0.3, 0.2]), ROLES, chatty) == "g"
    assert choose_speaker("What about the forge?", scene, ROLES["b"], ROLES, CALM, said_by="b") != "b"
    # in NPC talk the last speaker does not speak twice in a row, even when named
    assert (
        choose_speaker("Brakka, your turn.", scene, ROLES["b"], ROLES, CALM, said_by="m", not_again="b")
        != "b"
    )


def test_the_game_names_the_responder_and_it_must_be_a_member():
    scene = _scene()
    assert choose_speaker("Mira, hi.", scene, ROLES["m"], ROLES, CALM, game_named="g") == "g"
    with pytest.raises(InvalidInputError, match="responder_session_id"):
        choose_speaker("hi", scene, ROLES["m"], ROLES, CALM, game_named="zed")


def test_everyone_but_the_speaker_hears_and_the_heard_lines_become_the_next_line():
    scene = _scene()
    scene.hear(said("Player", "Who fixes swords here?"))
    scene.hear(said("Brakka Ironhand", "I do.  For a price."), said_by="b")
    assert scene.heard["m"] == ['Player: "Who fixes swords here?"', 'Brakka Ironhand: "I do. For a price."']
    assert scene.heard["b"] == ['Player: "Who fixes swords here?"']
    # the earlier lines are told as who said what; the last one comes as it was said, to be answered
    assert scene.take_heard("m") == '(Player said: "Who fixes swords here?")\nI do. For a price.'
    assert "m" not in scene.heard and scene.take_heard("m") == ""
    assert scene.take_heard("b") == "Who fixes swords here?"  # a player's line alone reads as in Chat
    scene.hear(said("Narrator", "A bell rings."))
    assert scene.take_heard("g") == (
        '(Player said: "Who fixes swords here?") (Brakka Ironhand said: "I do. For a price.")\n'
        "(Narrator: A bell rings.)"
    )


def test_a_long_backlog_keeps_its_newest_lines_within_a_line_limit():
    scene = _scene()
    for i in range(100):
        scene.hear(said("Player", f"line {i} " + "x" * 40))
    text = scene.take_heard("b")
    assert len(text) <= MAX_TEXT_CHARS and text.endswith("\nline 99 " + "x" * 40) and "line 0 " not in text


def test_members_and_speakers_are_checked():
    with pytest.raises(InvalidInputError, match="session_ids"):
        check_members(["a"])
    with pytest.raises(InvalidInputError, match="session_ids"):
        check_members(["a", "a"])
    with pytest.raises(InvalidInputError, match="session_ids"):
        check_members([str(i) for i in range(7)])
    assert check_speaker("") == "Player" and check_speaker("  Town   crier ") == "Town crier"
    with pytest.raises(InvalidInputError, match="speaker"):
        check_speaker("x" * 65)
