"""What a player says about themselves (runtime/player_facts.py): kept in their words; questions and passing
states are not."""

from __future__ import annotations

import pytest

from npc_sdk.runtime.player_facts import MAX_FACT_CHARS, player_facts


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("My name is Ada.", ["My name is Ada."]),
        (
            "Hi there! My name is Ada, and I'm looking for my brother.",
            ["My name is Ada, and I'm looking for my brother."],
        ),
        ("Oh, I'm looking for my brother Tom. Have you seen him?", ["Oh, I'm looking for my brother Tom."]),
        ("I hate spiders. Do you sell torches?", ["I hate spiders."]),
        ("I'm a blacksmith from Karth.", ["I'm a blacksmith from Karth."]),
        ("My brother went north last spring.", ["My brother went north last spring."]),
        ("Call me Red", ["Call me Red"]),
        (
            "Someday I hope to find a bow carved from dragonbone.",
            ["Someday I hope to find a bow carved from dragonbone."],
        ),
        ("Well, my horse is lame.", ["Well, my horse is lame."]),
        ("Can you fix it? I broke it yesterday.", ["I broke it yesterday."]),
    ],
)
def test_lasting_statements_about_the_player_are_kept_as_said(line, kept):
    assert player_facts(line) == kept


@pytest.mark.parametrize(
    "line",
    [
        "Where is the inn?",
        "Is my name on the list?",  # a question, even about themselves
        "I'm fine.",
        "I'm just looking.",
        "I'm back!",
        "Give me your best sword.",
        "The weather is nice today.",
        "Hi.",
        "Thanks, I will.",
        "Yes, my lord.",
        "Nice weather, I guess.",
        "I'd like a room for the night.",
        "I think so.",
        "",
    ],
)
def test_questions_commands_passing_states_and_small_talk_are_not(line):
    assert player_facts(line) == []


def test_a_long_statement_is_cut():
    (fact,) = player_facts("My story is " + "very " * 100 + "long.")
    assert len(fact) == MAX_FACT_CHARS
