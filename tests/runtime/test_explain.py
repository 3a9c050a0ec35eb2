"""Why this reply (ChatRequest.explain): the lore that fired with its keys, the notes, the biased words, the action
decision and the emotion's scores, made beside the turn without changing what it generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from npc_sdk.personas.files import load_persona
from npc_sdk.personas.persona import LoreEntry, Persona
from npc_sdk.personas.prompt import Turn, turn_context, turn_lore
from npc_sdk.runtime.conversation import Conversation
from npc_sdk.runtime.generation import GenerationConfig
from npc_sdk.runtime.sampling import make_sampler
from npc_sdk.runtime.scene import SceneEntity
from npc_sdk.wire import event_from_proto, event_to_proto

from ..helpers import byte_tokenizer

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "personas"
TOK = byte_tokenizer()
SEEDED = GenerationConfig(max_tokens=16, seed=11)


def _sage(*entries: LoreEntry, **kw) -> Persona:
    return Persona(name="Sage", lore=list(entries), **{"lore_budget_tokens": 2000, **kw})


def test_a_lore_entry_whose_key_is_in_the_line_is_explained_with_that_key():
    sage = _sage(
        LoreEntry(["dragon", "wyrm"], "DRAGON-LORE", name="dragons"),
        LoreEntry(["river"], "RIVER-LORE"),
        LoreEntry([], "ALWAYS-LORE", constant=True),
    )
    hits = turn_lore(TOK, sage, [], "Is the wyrm awake?")
    assert [(h.text, h.keys, h.why) for h in hits] == [
        ("DRAGON-LORE", ("wyrm",), "keys"),
        ("ALWAYS-LORE", (), "constant"),
    ]
    assert hits[0].index == 0 and hits[0].name == "dragons" and hits[1].index == 2
    # the same entries, in the same order, as the note the decoder reads
    note = turn_context(TOK, sage, [], "Is the wyrm awake?")
    assert note.index("DRAGON-LORE") < note.index("ALWAYS-LORE") and "RIVER-LORE" not in note


def test_lore_found_in_an_earlier_turn_or_only_through_other_lore_says_so():
    sage = _sage(
        LoreEntry(["dragon"], "The dragon guards the river ford."),
        LoreEntry(["ford"], "FORD-LORE"),
        lore_recursion=1,
    )
    hits = turn_lore(TOK, sage, [Turn("Tell me of the dragon.", "It sleeps.")], "And then?")
    assert [(h.keys, h.why) for h in hits] == [(("dragon",), "keys"), (("ford",), "recursion")]


def test_the_biased_words_are_the_samplers_with_their_source():
    brakka = load_persona(SAMPLES / "brakka.toml")
    config = GenerationConfig(role_word_scale=2.0)
    scene = ({"slime": 1.5, "forge": 1.0, "dragon": -3.0}, {})
    sampler = make_sampler(TOK, brakka, config, 256, 0, scene)
    biased = {w: (v, src) for w, v, src in sampler.biased}
    assert biased["anvil"] == (4.0, "role")  # 2.0 times the scale
    assert biased["forge"] == (4.0, "role")  # the role word's bonus is the larger: it wins
    assert biased["slime"] == (1.5, "scene") and biased["dragon"] == (-3.0, "absent")
    assert [abs(v) for _, v, _ in sampler.biased] == sorted(
        (abs(v) for _, v, _ in sampler.biased), reverse=True
    )


@pytest.mark.slow
def test_a_turn_explains_itself_and_says_the_same_words_as_without(runtime_int4):
    brakka = load_persona(SAMPLES / "brakka.toml")
    line = "Can you sharpen my sword?"
    state = {"time_of_day": "night"}
    scene = [SceneEntity("slime", x=0.1)]
    with Conversation(runtime_int4, brakka) as conv:
        plain_action, plain = conv.turn(line, config=SEEDED, state=state, scene=scene)
    with Conversation(runtime_int4, brakka) as conv:
        action, done = conv.turn(line, config=SEEDED, state=state, scene=scene, explain=True)
    assert plain.explanation is None
    assert (action, done.token_ids) == (plain_action, plain.token_ids)  # explaining changes nothing generated
    why = done.explanation
    assert [(h.keys, h.why) for h in why.lore] == [(("sword",), "keys")]
    assert why.lore[0].text.startswith("Brakka reforges blades")
    assert why.state_note == "(Game state: time of day: night.)\n"
    assert why.scene_note.startswith("(In view: a slime on the left")
    assert why.action_note.startswith("(You agree and take the player's weapon")
    assert why.context == conv.history[-1].context  # every note, as stored with the turn
    assert why.action.name == action.name == "sharpen_weapon" and why.action.score == action.confidence
    assert why.action.score >= why.action.threshold and why.action.request >= why.action.request_threshold
    assert why.action.best_rejected.name == "open_shop"
    assert why.action.best_rejected.score < why.action.score
    words = {b.word: (b.weight, b.source) for b in why.biased_words}
    assert words["forge"] == (2.0, "role") and words["slime"] == (SEEDED.scene_word_weight, "scene")
    assert why.emotion_scores[0] == done.emotion and len(why.emotion_scores) == 7
    assert abs(sum(e.intensity for e in why.emotion_scores) - 1) < 0.01
    assert (why.history_start, why.history_turns, why.memory_note) == (0, 0, "")
    # over the wire and back, as the gRPC server sends it and the Python client reads it
    assert event_from_proto(event_to_proto(done), "").explanation == why


@pytest.mark.slow
def test_an_action_that_cannot_fire_is_the_best_rejected_one_with_why(runtime_int4):
    ysolde = load_persona(SAMPLES / "ysolde.toml")  # heal needs player_health = low
    with Conversation(runtime_int4, ysolde) as conv:
        action, done = conv.turn(
            "Please heal Ser Aldric, he is bleeding!",
            config=SEEDED,
            scene=[SceneEntity("knight", "Ser Aldric")],
            explain=True,
        )
    decision = done.explanation.action
    assert action is None and decision.name == "" and decision.score == 0
    assert decision.best_rejected.name == "heal" and decision.best_rejected.reason.startswith("when: ")
