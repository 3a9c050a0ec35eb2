"""Long-term memory (runtime/memory.py): exchanges the history window has rolled past come back when relevant."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from npc_sdk.errors import InvalidInputError
from npc_sdk.personas.persona import Persona
from npc_sdk.personas.prompt import Turn
from npc_sdk.runtime.memory import MAX_RECALLED, TurnMemory, memory_note
from npc_sdk.wire import persona_from_proto, persona_to_proto

WORDS = ("brother", "horse", "weather", "sword", "name", "scarf")


def _topic_vectors(texts):
    """A vector per text with a 1 for each topic word it holds (plus a little noise), like a sentence encoder."""
    rng = np.random.default_rng(len(texts))
    out = np.array([[float(w in t.lower()) for w in WORDS] for t in texts], dtype=np.float32)
    return out + 0.01 * rng.random(out.shape, dtype=np.float32)


def _query(word: str) -> np.ndarray:
    return np.array([float(w == word) for w in WORDS], dtype=np.float32)


def _history() -> list[Turn]:
    turns = [Turn(f"Lovely weather today, day {i}.", "Aye, the weather holds.") for i in range(80)]
    turns[3] = Turn("I'm looking for my brother Tom.", "I'll keep an eye out for your brother.")
    turns[9] = Turn("My horse is called Pepper.", "A fine name for a horse.")
    return turns


def test_recall_finds_the_exchange_about_the_line_among_those_left_out():
    memory = TurnMemory(_topic_vectors)
    history = _history()
    memory.sync(history)
    assert memory.count == 80
    assert memory.recall(_query("brother"), 50, 200, len) == [3]
    assert memory.recall(_query("horse"), 50, 200, len) == [9]
    assert memory.recall(_query("brother"), 3, 200, len) == []  # turn 3 is still in the window: not recalled
    assert memory.recall(_query("scarf"), 50, 200, len) == []  # nothing about it: no note rather than noise
    assert memory.recall(_query("brother"), 50, 10, len) == []  # over the budget


def test_recall_takes_at_most_a_few_and_keeps_their_order():
    memory = TurnMemory(_topic_vectors)
    history = [Turn(f"About my sword, part {i}.", "Noted.") for i in range(10)]
    memory.sync(history)
    picked = memory.recall(_query("sword"), 10, 10_000, len)
    assert len(picked) == MAX_RECALLED and picked == sorted(picked)


def test_vectors_are_made_once_per_turn_and_remade_for_another_history():
    calls = []

    def counting(texts):
        calls.append(len(texts))
        return _topic_vectors(texts)

    memory = TurnMemory(counting)
    history = _history()
    memory.sync(history[:40])
    memory.sync(history)  # only the 40 new turns are encoded
    memory.sync(history)
    assert calls == [40, 40] and memory.count == 80
    memory.sync([Turn("Where's my scarf?", "No idea.")])  # not this history's continuation: start over
    assert calls[-1] == 1 and memory.count == 1


def test_the_note_quotes_player_and_npc_and_cuts_long_lines():
    note = memory_note([Turn("My name is Ada.", "Welcome, Ada."), Turn("x" * 500, "Hm.")])
    assert note.startswith('(Earlier the player said: "My name is Ada." You answered: "Welcome, Ada."')
    assert note.endswith(")\n") and "x" * 300 not in note and "..." in note
    assert memory_note([]) == ""


def test_the_budget_is_a_persona_setting_checked_and_carried_by_the_proto():
    with pytest.raises(InvalidInputError, match="persona.memory_budget_tokens"):
        Persona(name="Mira", memory_budget_tokens=-1)
    assert Persona(name="Mira").memory_budget_tokens == 200
    for budget in (0, 200, 640):
        back = persona_from_proto(persona_to_proto(Persona(name="Mira", memory_budget_tokens=budget)))
        assert back.memory_budget_tokens == budget


def _long_history() -> list[Turn]:
    topics = (
        "the weather",
        "the harvest",
        "the river fish",
        "the mine carts",
        "the market",
        "the old bridge",
    )
    turns = [
        Turn(
            f"What do you think about {topics[i % 6]} this week, day {i}?", f"Same as ever, {topics[i % 6]}."
        )
        for i in range(240)
    ]
    turns.insert(
        5, Turn("My name is Ada, and I'm looking for my brother Tom.", "I'll look out for Tom, Ada.")
    )
    return turns


@pytest.mark.slow
def test_a_rolled_over_session_is_told_what_the_player_said_long_ago(runtime_int4):
    from npc_sdk.demo import DEMO_PERSONA
    from npc_sdk.runtime.turn import prepare_turn

    history = _long_history()
    turn = prepare_turn(runtime_int4, DEMO_PERSONA, history, "Do you remember who I'm looking for?")
    assert turn.window_start > 5  # the fact itself has left the window...
    assert "my brother Tom" in turn.context  # ...and comes back in the note before the line
    # the window moved on by a quarter of the context besides, so the next turns fit without moving it again
    budget = runtime_int4.context_length - DEMO_PERSONA.generation_defaults().max_tokens
    assert budget // 2 < turn.target.length <= budget - budget // 4 + 100
    unrelated = prepare_turn(runtime_int4, DEMO_PERSONA, history, "Can you sharpen my sword?")
    assert "Earlier the player said" not in unrelated.context
    off = replace(DEMO_PERSONA, memory_budget_tokens=0)
    assert (
        "Tom" not in prepare_turn(runtime_int4, off, history, "Do you remember who I'm looking for?").context
    )


@pytest.mark.slow
def test_the_note_is_stored_with_the_turn_and_the_next_turn_reuses_the_cache(runtime_int4):
    from npc_sdk.demo import DEMO_PERSONA
    from npc_sdk.runtime.conversation import Conversation
    from npc_sdk.runtime.generation import GenerationConfig

    quick = GenerationConfig(temperature=0.0, max_tokens=8)
    with Conversation(runtime_int4, DEMO_PERSONA, _long_history()) as conv:
        conv.reply("Who was I looking for again?", config=quick, use_prefix=False)
        assert "my brother Tom" in conv.history[-1].context
        again = conv.reply("And how much for a new blade?", config=quick, use_prefix=False)
    # the window did not move again, and the first turn (its note included) is part of the prefix the cache keeps
    assert again.usage.cached_tokens > 2000 and again.usage.prompt_tokens - again.usage.cached_tokens < 100


# ---- long-term memories (KnownMemories): seeded in personas, kept from players, added by the game ----------------


def test_known_memories_are_recalled_by_relevance_from_the_first_turn():
    from npc_sdk.runtime.memory import KnownMemories, Memory, known_note

    known = KnownMemories(_topic_vectors)
    known.set(
        [
            Memory("My horse is called Pepper.", "Brakka", player_id="p1", source="player"),
            Memory("The weather turned foul the day the bridge fell.", "Brakka", source="persona"),
            Memory("A sword was stolen from the forge.", "", group="village", source="game"),
        ]
    )
    (horse,) = known.recall(_query("horse"), 200, len)
    assert horse.text == "My horse is called Pepper."
    assert [m.source for m in known.recall(_query("sword"), 200, len)] == ["game"]
    assert known.recall(_query("scarf"), 200, len) == []  # nothing about it: no note rather than noise
    assert known.recall(_query("horse"), 5, len) == []  # over the budget
    note = known_note([horse, *known.recall(_query("sword"), 200, len)])
    assert note == (
        '(You remember: The player told you before: "My horse is called Pepper." '
        "A sword was stolen from the forge.)\n"
    )


def test_given_vectors_are_used_and_missing_ones_made_once():
    from npc_sdk.runtime.memory import KnownMemories, Memory

    calls = []

    def counting(texts):
        calls.append(list(texts))
        return _topic_vectors(texts)

    shared: dict = {}
    known = KnownMemories(counting, shared)
    given = _topic_vectors(["my brother"])[0]
    known.set([Memory("About the weather.", "B"), Memory("stored", "B")], [None, given])
    assert calls == [["About the weather."]]
    assert [m.text for m in known.recall(_query("brother"), 200, len)] == [
        "stored"
    ]  # the given vector counts
    KnownMemories(counting, shared).set([Memory("About the weather.", "B")])  # another session, same text
    assert len(calls) == 1


def test_memories_are_checked_and_seeded_ones_carried_by_the_persona_and_proto():
    from npc_sdk.personas.persona import SeedMemory
    from npc_sdk.runtime.memory import Memory

    with pytest.raises(InvalidInputError, match="memory.text"):
        Memory(" ", "Brakka").check()
    with pytest.raises(InvalidInputError, match="memory.npc"):
        Memory("Something.").check()
    with pytest.raises(InvalidInputError, match=r"persona.memories\[0\].shared"):
        Persona.from_dict({"name": "Mira", "memories": [{"text": "The mill burned.", "shared": True}]})
    with pytest.raises(InvalidInputError, match=r"persona.memories\[1\]"):
        Persona.from_dict({"name": "Mira", "memories": ["ok", {"txt": "typo"}]})
    mira = Persona.from_dict(
        {
            "name": "Mira",
            "memory_group": "ravensfold",
            "memories": ["I owe Tam two silver.", {"text": "The mill burned.", "shared": True}],
        }
    )
    assert mira.memories == [SeedMemory("I owe Tam two silver."), SeedMemory("The mill burned.", True)]
    assert persona_from_proto(persona_to_proto(mira)) == mira
    assert Persona.from_dict(mira.to_dict()) == mira


def test_a_groups_shared_seeds_reach_every_persona_of_the_group():
    from npc_sdk.personas.persona import SeedMemory
    from npc_sdk.server.memory_keeper import with_group_memories

    mira = Persona(name="Mira", memory_group="ravensfold", memories=[SeedMemory("I owe Tam two silver.")])
    abel = Persona(
        name="Abel",
        memory_group="ravensfold",
        memories=[SeedMemory("The mill burned last spring.", True), SeedMemory("I dig graves.")],
    )
    stranger = Persona(name="Zed", memories=[SeedMemory("Far away things.")])
    got = with_group_memories(mira, [mira, abel, stranger])
    assert [m.text for m in got.memories] == ["I owe Tam two silver.", "The mill burned last spring."]
    assert with_group_memories(stranger, [mira, abel, stranger]) == stranger


@pytest.mark.slow
def test_a_seeded_memory_reaches_the_first_turn_only_when_the_line_is_about_it(runtime_int4):
    from npc_sdk.demo import DEMO_PERSONA
    from npc_sdk.personas.persona import SeedMemory
    from npc_sdk.runtime.conversation import Conversation
    from npc_sdk.runtime.generation import GenerationConfig

    quick = GenerationConfig(temperature=0.0, max_tokens=6)
    persona = replace(
        DEMO_PERSONA, memories=[SeedMemory("Bandits stole my best hammer from the forge last week.")]
    )
    with Conversation(runtime_int4, persona) as conv:
        conv.reply("Did something get stolen from your forge?", config=quick, use_prefix=False)
        conv.reply("Nice weather today.", config=quick, use_prefix=False)
        first, second = conv.history[0].context, conv.history[1].context
    assert "(You remember: Bandits stole my best hammer" in first
    assert "You remember" not in second


def test_stored_vectors_are_taken_as_they_are_and_new_turns_append_theirs():
    calls = []

    def counting(texts):
        calls.append(len(texts))
        return _topic_vectors(texts)

    history = _history()[:10]
    stored = list(_topic_vectors([f"{t.user}\n{t.reply}" for t in history]))
    memory = TurnMemory(counting)
    memory.preload(history, [*stored[:6], None, *stored[7:]])  # the 7th was stored without: the rest is made
    assert memory.count == 6 and calls == []
    memory.sync(history)
    assert memory.count == 10 and calls == [4]
    history.append(Turn("My horse is lame.", "Poor beast."))
    memory.append(history, _topic_vectors(["horse"])[0])
    assert memory.count == 11 and calls == [4]  # the new turn's vector was given, not made
    memory.sync(history)
    assert calls == [4] and memory.recall(_query("horse"), 11, 200, len)[-1] == 10
