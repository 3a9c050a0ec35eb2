"""The reply critic: its rules on written replies, its vectors on the real text encoder, its fitting."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from npc_sdk.personas.files import load_persona
from npc_sdk.runtime.critic import FEATURES, CriticWeights, ReplyCritic, fit_weights, rule_flags

BRAKKA = load_persona(Path(__file__).resolve().parents[2] / "samples" / "personas" / "brakka.toml")


@pytest.mark.parametrize(
    ("reply", "rule"),
    [
        ("*wipes her hands* Ten silver, lad.", "stage"),
        ("Brakka: Ten silver, lad.", "stage"),
        ("Brakka smiles and takes the blade.", "narration"),
        ("She was crossing the river when the slimes came.", "narration"),
        ("Can you sharpen my sword for me? Aye.", "echo"),
        ("I'm Grimold, the gate guard.", "wrong_name"),
        ("I am the Drunken Goose, lad.", "wrong_name"),
        ("I'm a Nerd Restaurant.", "wrong_name"),
        ("I'm the mushroom, the slime and the gem of this place.", "noun_run"),
        ("As an AI I cannot sharpen swords.", "meta"),
        ("That's a explorer, lad.", "article"),
        ("Give me an sword and I'll show you.", "article"),
        ("I'd like a sword sharpened, lad.", "wants"),
        ("The forge is hot and the forge is hot and the forge is hot today.", "repeat"),
        ("Ten silver and the edge will", "unfinished"),
    ],
)
def test_each_rule_catches_its_failure(reply, rule):
    flags = rule_flags(reply, "Can you sharpen my sword for me?", BRAKKA)
    assert flags[rule] == 1.0, flags


@pytest.mark.parametrize(
    "reply",
    [
        "Hand it here. Ten silver, and the edge will split a hair.",
        "Brakka. I run the forge, and I don't do discounts.",
        "I'm Brakka, lad. Mind the anvil.",
        "I'm the blacksmith here, and I'm the Guild's smith too.",
        "Give it an hour, lad. A one-eyed apprentice could do it by dusk.",
        "Slimes on the meadow path again? Keep to the stones, they eat boots.",
    ],
)
def test_good_replies_break_no_rule(reply):
    flags = rule_flags(reply, "Can you sharpen my sword for me?", BRAKKA)
    assert not any(flags.values()), flags


def test_the_players_want_said_as_its_own_unless_the_line_offers():
    assert rule_flags("I'd like a sourdough.", "One sourdough, please.", BRAKKA)["wants"] == 1.0
    assert rule_flags("I'd like a cigarette, lad.", "Want a cigarette?", BRAKKA)["wants"] == 0.0
    assert rule_flags("I'd like a few, lad.", "Got three sea bass! Do you want them?", BRAKKA)["wants"] == 0.0
    assert rule_flags("I'd love to, lad.", "Can you sharpen my sword?", BRAKKA)["wants"] == 0.0


def test_a_grown_surname_is_a_wrong_name():
    from npc_sdk.personas.persona import Persona

    nell = Persona(name="Nell Harrow", description="Owner of the Rusty Anchor, a dockside tavern.")
    line = "What's your name?"
    assert rule_flags("Nell Harrow. I'm Nell Harrowson.", line, nell)["wrong_name"] == 1.0
    for fine in ("Nell Harrow, love.", "I'm Nell Harrow's niece, love.", "Harrow. Nell Harrow."):
        assert rule_flags(fine, line, nell)["wrong_name"] == 0.0, fine


def test_its_first_name_with_another_surname_is_a_wrong_name():
    from npc_sdk.personas.persona import Persona

    agnes = Persona(name="Agnes Thorne", description="Keeper of the Gull Point lighthouse.")
    line = "You're just a bot, aren't you?"
    for wrong in ("I'm Agnes Thompson.", "Agnes Thackley, keeper of the lamp.", "I'm Agnes Thornewood."):
        assert rule_flags(wrong, line, agnes)["wrong_name"] == 1.0, wrong
    for fine in (
        "I'm Agnes Thorne.",
        "I'm Agnes, and I keep the lamp.",
        "Agnes. Thompson drowned on the reef.",
    ):
        assert rule_flags(fine, line, agnes)["wrong_name"] == 0.0, fine
    # a title is not a first name, and a persona without a surname has none to get wrong
    leofric = Persona(name="Sir Leofric", description="A knight of the realm.")
    assert (
        rule_flags("Sir Gareth Vell, the knight on the right.", "Who's that?", leofric)["wrong_name"] == 0.0
    )
    zed = Persona(name="Zed", description="A teenage hacker.")
    assert rule_flags("I'm Zed, choom.", "Who are you?", zed)["wrong_name"] == 0.0


def test_calling_the_player_by_its_own_name_is_a_wrong_name():
    from npc_sdk.personas.persona import Persona

    moth = Persona(name="Moth", description="A cheerful scavenger kid.")
    tobias = Persona(name="Tobias Wren", description="The ferryman of the Mirewater.")
    line = "Could you find me some medicine?"
    # its name said as its own, or another name as the player's, is no slip
    for reply, persona, flagged in (
        ("I can't find anything, Moth.", moth, 1.0),
        ("That's a bomb, Moth!", moth, 1.0),
        ("I like it a lot, Tobias.", tobias, 1.0),
        ("No family, Tobias Wren.", tobias, 1.0),
        ("I'm Moth.", moth, 0.0),
        ("Moth, at your service.", moth, 0.0),
        ("I can't find anything, Rook.", moth, 0.0),
        ("Two coppers, passenger.", tobias, 0.0),
    ):
        assert rule_flags(reply, line, persona)["wrong_name"] == flagged, reply


def test_fitting_learns_which_feature_separates_the_labels():
    rng = random.Random(0)
    rows, labels = [], []
    for _ in range(300):
        row = {k: 0.0 for k in FEATURES}
        row["bias"] = 1.0
        row["echo"] = float(rng.random() < 0.3)
        row["relevance"] = rng.uniform(0, 1)
        rows.append(row)
        labels.append(row["echo"] == 0.0 and row["relevance"] > 0.3)
    w = fit_weights(rows, labels)
    assert w["echo"] < -1.0 and w["relevance"] > 1.0
    critic = ReplyCritic(lambda texts: None, CriticWeights(w, 0.5))
    right = sum((critic.score(r) >= 0.5) == lab for r, lab in zip(rows, labels, strict=True))
    assert right / len(rows) > 0.85


def test_builtin_weights_cover_every_feature():
    weights = CriticWeights.builtin()
    assert set(weights.weights) == set(FEATURES)
    assert 0.0 < weights.threshold < 1.0


@pytest.mark.slow
def test_an_answer_in_voice_outscores_a_broken_reply_on_the_real_encoder(runtime_int4):
    line = "Can you sharpen my sword?"
    good = "Hand it here, lad. Ten silver and the edge will split a hair."
    bad = [
        "Brakka smiles and takes the sword to the river.",
        "Can you sharpen my sword? The sword.",
        "I'm Grimold, the gate guard of the mushroom and mouse.",
    ]
    verdicts = runtime_int4.critic.judge(line, BRAKKA, [good, *bad], [-1.2] * 4)
    assert verdicts[0].score > max(v.score for v in verdicts[1:])
    assert all(v.failed for v in verdicts[1:]) and not verdicts[0].failed
    # the answer is nearer the line than an unrelated reply in the encoder's space
    other = runtime_int4.critic.features(line, BRAKKA, [good, "The moon is pale over the northern sea."])
    assert other[0]["relevance"] > other[1]["relevance"]


def test_the_persona_is_encoded_once_and_a_given_line_vector_not_again():
    """The pick sits before a best-of-N reply's first token: only the candidates are encoded each turn."""
    import numpy as np

    encoded: list[str] = []

    def vectors(texts):
        encoded.extend(texts)
        return np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in texts])

    critic = ReplyCritic(vectors)
    line, replies = "Can you sharpen my sword?", ["Ten silver, lad.", "Aye, by dusk."]
    first = critic.features(line, BRAKKA, replies)
    assert encoded.count(BRAKKA.role_text()) == 1 and encoded.count(line) == 1
    encoded.clear()
    again = critic.features(line, BRAKKA, replies, line_vector=vectors([line])[0])
    assert encoded == [line, *replies]  # the line once, by the test; the persona not at all
    assert first == again


def _fixed_vectors(texts):
    return np.stack([np.eye(4)[len(t) % 4] for t in texts])


def test_the_fluency_offset_recalibrates_scores_and_keeps_the_pick():
    """The shipped weights read fluency relative to the decoder they were fitted against: a sharper decoder's
    replies are not all called acceptable, and the order among one line's candidates does not move."""
    builtin = CriticWeights.builtin()
    assert builtin.fluency_offset > 0  # the shipped decoder is the preference-trained one
    raw = CriticWeights(builtin.weights, builtin.threshold)
    replies = ["Ten silver, lad.", "Ten silver, and the edge will split a hair.", "Aye, hand it here."]
    fluency = [-0.3, -0.9, -0.5]
    line = "Can you sharpen my sword?"
    shifted = ReplyCritic(_fixed_vectors, builtin).judge(line, BRAKKA, replies, fluency)
    unshifted = ReplyCritic(_fixed_vectors, raw).judge(line, BRAKKA, replies, fluency)
    for a, b, flu in zip(shifted, unshifted, fluency, strict=True):
        assert a.features["fluency"] == pytest.approx(flu - builtin.fluency_offset)
        assert a.score < b.score
    assert sorted(range(3), key=lambda i: shifted[i].score) == sorted(
        range(3), key=lambda i: unshifted[i].score
    )
    # an unknown fluency stays the fallback: the offset is not applied to a guess
    (unknown,) = ReplyCritic(_fixed_vectors, builtin).judge(line, BRAKKA, ["Ten silver, lad."], [None])
    assert unknown.features["fluency"] == -2.5
    # and the offset survives a round trip through the file format
    again = CriticWeights(**json.loads(builtin.to_json()))
    assert again.fluency_offset == builtin.fluency_offset
