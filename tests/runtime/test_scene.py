"""Scene facts: the head's tags and the game's entities merged into one note and one word bias."""

from __future__ import annotations

import math

import pytest

from npc_sdk.errors import InvalidInputError
from npc_sdk.runtime.generation import GenerationConfig
from npc_sdk.runtime.scene import (
    ABSENT_SCORE,
    MAX_ENTITIES,
    SceneEntity,
    TagSpec,
    check_entities,
    merge,
    scene_words,
    seen_tags,
)

VOCAB = [
    TagSpec("slime", ("slime", "slimes", "ooze"), "thing", 0.4),
    TagSpec("gem", ("gem", "gems"), "thing", 0.6),
    TagSpec("door", ("door", "doors"), "thing", 0.5),
    TagSpec("grass", ("grass", "meadow"), "terrain", 0.5),
    TagSpec("dusk", ("dusk", "sunset"), "time", 0.5),
]


def test_tags_past_their_own_thresholds_are_seen_most_certain_first():
    facts = merge([0.45, 0.55, 0.01, 0.9, 0.7], VOCAB)
    assert [f.tag for f in facts.facts] == ["grass", "dusk", "slime"]  # gem 0.55 is under its 0.6
    assert facts.absent == ["door"]  # 0.01 < ABSENT_SCORE: surely not there
    assert facts.note() == "(In view: a slime; grass, dusk.)\n"
    assert [s.tag for s in seen_tags(facts)] == ["grass", "dusk", "slime"]
    assert all(s.source == "screenshot" for s in seen_tags(facts))


def test_game_entities_merge_with_what_the_head_saw():
    entities = [
        SceneEntity("ferryman", "Old Tom the ferryman", x=0.1),
        SceneEntity("slime"),
        SceneEntity("slime"),
        SceneEntity("door", distance=2.0),
    ]
    facts = merge([0.9, 0.0, 0.0, 0.0, 0.0], VOCAB, entities)
    by_tag = {f.tag: f for f in facts.facts}
    assert by_tag["slime"].count == 2 and by_tag["slime"].source == "both" and by_tag["slime"].score == 0.9
    assert by_tag["ferryman"].source == "game" and by_tag["ferryman"].where == "on the left"
    assert "door" not in facts.absent  # the game says it is there, whatever the head thinks
    note = facts.note()
    assert note.startswith("(In view: Old Tom the ferryman on the left, 2 slimes, a door close by")
    assert "gem" not in note


def test_no_screenshot_means_no_absent_words_and_only_the_game_facts():
    facts = merge(None, VOCAB, [SceneEntity("gem")])
    assert facts.absent == [] and [f.tag for f in facts.facts] == ["gem"]
    assert merge(None, VOCAB).note() == ""


def test_word_bias_pushes_present_words_up_and_surely_absent_ones_down():
    facts = merge([0.9, 0.0, 0.3, 0.9, 0.9], VOCAB, [SceneEntity("ferryman", "Old Tom")])
    words, groups = scene_words(facts, VOCAB, GenerationConfig(scene_word_weight=4.0, absent_word_weight=3.0))
    assert groups["ooze"] == groups["slime"] == "slime"  # one bonus per thing, whichever word names it
    assert words["slime"] == words["ooze"] == words["grass"] == words["ferryman"] == words["tom"] == 4.0
    assert words["gem"] == words["gems"] == -3.0  # 0.0 < ABSENT_SCORE
    assert "door" not in words  # 0.3: unsure, left alone
    assert "dusk" not in words  # times of day are too common a word to push
    off, _ = scene_words(facts, VOCAB, GenerationConfig(scene_word_weight=0.0, absent_word_weight=0.0))
    assert off == {}
    assert ABSENT_SCORE < min(t.threshold for t in VOCAB)


@pytest.mark.parametrize(
    "entity, field",
    [
        (SceneEntity(""), "scene[0].tag"),
        (SceneEntity("slime", x=1.5), "scene[0].x"),
        (SceneEntity("slime", y=-0.1), "scene[0].y"),
        (SceneEntity("slime", x=math.nan), "scene[0].x"),
        (SceneEntity("slime", distance=-1.0), "scene[0].distance"),
        (SceneEntity("x" * 65), "scene[0].tag"),
    ],
)
def test_bad_entities_name_their_field(entity, field):
    with pytest.raises(InvalidInputError) as err:
        check_entities([entity])
    assert err.value.field == field


def test_too_many_entities_are_refused():
    with pytest.raises(InvalidInputError) as err:
        check_entities([SceneEntity("slime")] * (MAX_ENTITIES + 1))
    assert err.value.field == "scene"
