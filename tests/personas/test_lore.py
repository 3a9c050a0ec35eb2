"""Lore activation: secondary-key logic, constants, regex keys, V3 decorators, budget, placement, recursion."""

from __future__ import annotations

import pytest

from npc_sdk.errors import InvalidInputError
from npc_sdk.personas.lore import parse_decorators
from npc_sdk.personas.macros import expand
from npc_sdk.personas.persona import LoreEntry, Persona
from npc_sdk.personas.prompt import Turn, turn_context

from ..helpers import byte_tokenizer

TOK = byte_tokenizer()  # one token per byte: budgets are easy to reason about


def fired(persona: Persona, text: str, history: list[Turn] | None = None) -> str:
    return turn_context(TOK, persona, history or [], text)


def persona(*entries: LoreEntry, **kw) -> Persona:
    return Persona(name="Sage", lore=list(entries), **{"lore_budget_tokens": 2000, **kw})


@pytest.mark.parametrize(
    "logic, line, expected",
    [
        ("and_any", "the dragon sleeps", False),  # a key but no secondary key
        ("and_any", "the dragon in the cave", True),
        ("and_all", "the dragon in the cave", False),  # needs both secondaries
        ("and_all", "the dragon in the cave by the river", True),
        ("not_any", "the dragon in the cave", False),
        ("not_any", "the dragon sleeps", True),
        ("not_all", "the dragon in the cave by the river", False),
        ("not_all", "the dragon in the cave", True),
    ],
)
def test_secondary_keys_follow_the_selective_logic(logic, line, expected):
    entry = LoreEntry(["dragon"], "DRAGON-LORE", secondary_keys=["cave", "river"], selective_logic=logic)
    assert ("DRAGON-LORE" in fired(persona(entry), line)) is expected


def test_constant_entries_fire_without_keys_and_keys_match_whole_words_case_insensitively():
    p = persona(LoreEntry([], "ALWAYS", constant=True), LoreEntry(["art"], "ART"))
    assert "ALWAYS" in fired(p, "hello") and "ART" not in fired(p, "let us start")
    assert "ART" in fired(p, "I love ART.")
    strict = persona(LoreEntry(["Art"], "ART", case_sensitive=True))
    assert "ART" not in fired(strict, "i love art") and "ART" in fired(strict, "I love Art")
    loose = persona(LoreEntry(["art"], "ART", whole_words=False))
    assert "ART" in fired(loose, "let us start")


def test_regex_keys_and_plain_words_marked_as_regex():
    p = persona(
        LoreEntry(
            ["/dragons?\\s+egg/i"], "EGG"
        ),  # SillyTavern's /pattern/flags: a regex whatever use_regex says
        LoreEntry(["c++"], "CPP", use_regex=True),  # not a valid regex: matched as the words it holds
        LoreEntry(["forest"], "FOREST", use_regex=True),  # SillyTavern sets use_regex on plain words
        LoreEntry(["^wolf"], "WOLF", use_regex=True),
    )
    assert "EGG" in fired(p, "A Dragon   egg!") and "EGG" not in fired(p, "dragon's egg")
    assert "FOREST" in fired(p, "into the Forest") and "FOREST" not in fired(p, "forestry")
    assert "WOLF" in fired(p, "wolf at the door") and "WOLF" not in fired(p, "a wolf")
    assert "CPP" in fired(p, "I write C++ all day")
    with pytest.raises(InvalidInputError, match=r"persona\.lore\[0\]\.keys"):
        Persona(name="x", lore=[LoreEntry(["/[unclosed/"], "x")])


def test_the_budget_keeps_priority_first_then_order_and_placement_follows_position_and_depth():
    entries = [
        LoreEntry(["go"], "AAAAAAAAAA", order=1, priority=1),  # 10 tokens each
        LoreEntry(["go"], "BBBBBBBBBB", order=2, priority=5),
        LoreEntry(["go"], "CCCCCCCCCC", order=3, priority=3),
    ]
    ctx = fired(persona(*entries, lore_budget_tokens=20), "go")
    assert "BBBB" in ctx and "CCCC" in ctx and "AAAA" not in ctx  # the two highest priorities fit
    assert ctx.index("BBBB") < ctx.index("CCCC")  # shown in order, not by priority
    placed = persona(
        LoreEntry(["go"], "DEPTH0", position="depth", depth=0, order=0),
        LoreEntry(["go"], "DEPTH3", position="depth", depth=3, order=0),
        LoreEntry(["go"], "AFTER", position="after_char", order=0),
        LoreEntry(["go"], "BEFORE", position="before_char", order=9),
        post_history="POST",
    )
    ctx = fired(placed, "go")
    order = sorted(["DEPTH0", "DEPTH3", "AFTER", "BEFORE", "POST"], key=ctx.index)
    assert order == ["BEFORE", "AFTER", "DEPTH3", "DEPTH0", "POST"]
    outlet = persona(LoreEntry(["go"], "OUTLET", position="outlet"))
    assert fired(outlet, "go") == ""  # outlets are shown only through a macro


def test_recursion_is_off_by_default_and_bounded_when_on():
    chain = [
        LoreEntry(["king"], "The king lives in the castle."),
        LoreEntry(["castle"], "The castle has a moat."),
    ]
    assert "moat" not in fired(persona(*chain), "the king")
    assert "moat" in fired(persona(*chain, lore_recursion=1), "the king")


def test_scan_depth_per_entry_and_for_the_persona():
    history = [Turn("The cave is cold.", "Aye."), Turn("Hm.", "Yes.")]
    shallow = persona(LoreEntry(["cave"], "CAVE"), lore_scan_turns=1)
    assert "CAVE" not in fired(shallow, "okay", history)  # two turns back
    deep_entry = persona(LoreEntry(["cave"], "CAVE", scan_depth=2), lore_scan_turns=1)
    assert "CAVE" in fired(deep_entry, "okay", history)


def test_v3_decorators_are_applied_or_stripped_and_never_shown():
    body, deco_text = "The vault code is 7.", "@@depth 0\n@@role system\n@@@ fallback\n"
    deco, text = parse_decorators(deco_text + body)
    assert text == body and deco.depth == 0 and deco.ignored == ("role",)
    p = persona(
        LoreEntry(["vault"], "@@depth 0\n@@role system\nVAULT"),
        LoreEntry(["x"], "@@activate\nACTIVATED"),
        LoreEntry(["vault"], "@@dont_activate\nNEVER"),
        LoreEntry(["vault"], "@@exclude_keys guard, alarm\nEXCLUDED"),
        LoreEntry(["vault"], "@@additional_keys safe\nEXTRA"),
        LoreEntry(["vault"], "@@activate_only_after 2\nLATE"),
    )
    ctx = fired(p, "open the vault")
    assert "VAULT" in ctx and "ACTIVATED" in ctx and "EXCLUDED" in ctx and "EXTRA" in ctx
    assert "NEVER" not in ctx and "LATE" not in ctx and "@@" not in ctx
    assert "EXCLUDED" not in fired(p, "open the vault, mind the guard")
    assert "EXTRA" in fired(p, "crack the safe")
    assert "LATE" in fired(p, "open the vault", [Turn("a", "b"), Turn("c", "d")])


def test_keys_in_scripts_without_spaces_match_inside_words_and_macros_expand():
    p = persona(LoreEntry(["战斗"], "BATTLE"), LoreEntry(["name"], "{{char}} greets {{user}}. {{// hidden}}"))
    assert "BATTLE" in fired(p, "我们进入战斗状态")
    assert "Sage greets Player." in fired(p, "your name?")
    assert expand("<BOT> and <USER>", "Mae") == "Mae and Player"


def test_lore_entry_fields_are_validated_by_name():
    for entry, field in [
        ({"keys": ["a"], "text": "t", "position": "sideways"}, "persona.lore[0].position"),
        ({"keys": ["a"], "text": "t", "selective_logic": "maybe"}, "persona.lore[0].selective_logic"),
        ({"keys": ["a"], "text": "t", "depth": -1}, "persona.lore[0].depth"),
        ({"keys": ["a"], "text": "t", "priority": "high"}, "persona.lore[0].priority"),
        ({"keys": [], "text": "t"}, "persona.lore[0].keys"),
        ({"keys": ["a"], "text": "t", "colour": "red"}, "persona.lore[0].colour"),
    ]:
        with pytest.raises(InvalidInputError) as exc:
            Persona.from_dict({"name": "x", "lore": [entry]})
        assert exc.value.field == field, entry
    # a disabled placeholder (as real lorebooks hold) is accepted
    Persona.from_dict({"name": "x", "lore": [{"keys": [], "text": "", "enabled": False}]})


def test_every_lore_field_survives_the_wire():
    from npc_sdk.wire import persona_from_proto, persona_to_proto

    entry = LoreEntry(
        ["/vault/i"],
        "@@depth 0\nThe code is 7.",
        order=-3,
        secondary_keys=["door"],
        selective_logic="not_all",
        constant=True,
        use_regex=True,
        case_sensitive=True,
        whole_words=False,
        priority=9,
        position="an_top",
        depth=0,
        scan_depth=5,
        name="vault",
    )
    sent = Persona(name="Sage", lore=[entry, LoreEntry(["a"], "b")], lore_scan_turns=0, lore_recursion=2)
    back = persona_from_proto(persona_to_proto(sent))
    assert back.lore == sent.lore and back.lore_scan_turns == 0 and back.lore_recursion == 2
