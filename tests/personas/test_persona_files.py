"""Persona files: samples, each kind of malformed file, Character Card V2 round trips, lore and extends."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from npc_sdk.personas.cards import card_to_persona, persona_to_card, read_png_card, write_png_card
from npc_sdk.personas.files import load_persona
from npc_sdk.personas.persona import LoreEntry, Persona
from npc_sdk.personas.problems import PersonaFileError
from npc_sdk.personas.prompt import Turn, turn_context

from ..helpers import byte_tokenizer

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "personas"


def test_every_sample_validates_and_there_are_enough():
    files = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".toml", ".json", ".png"))
    personas = [load_persona(p) for p in files]
    npcs = [p for p in personas if p.id != "villager"]
    assert len(npcs) >= 8 and len({p.name for p in npcs}) == len(npcs)
    assert all(p.role_words and p.lore for p in npcs)
    assert any(p.suffix == ".png" for p in files)


def test_samples_match_the_json_schema():
    jsonschema = pytest.importorskip("jsonschema")
    import tomllib

    schema = json.loads((ROOT / "docs" / "persona.schema.json").read_text())
    for path in SAMPLES.glob("*.toml"):
        jsonschema.validate(tomllib.loads(path.read_text()), schema)


def test_extends_inherits_and_merges():
    brakka = load_persona(SAMPLES / "brakka.toml")
    assert brakka.scenario.startswith("A traveller passes through Emberfall")  # from villager.toml
    assert brakka.role_words["Emberfall"] == 1.5 and brakka.role_words["forge"] == 2.0
    assert {"smartphone", "internet"} <= set(brakka.banned_words)
    assert len(brakka.lore) == 2  # the village's mine lore plus her own
    assert brakka.generation == {"temperature": 0.7, "max_tokens": 80}
    assert brakka.id == "brakka"


def _problems(tmp_path: Path, name: str, text: str | bytes) -> list[str]:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(PersonaFileError) as err:
        load_persona(path)
    return [str(p) for p in err.value.problems]


@pytest.mark.parametrize(
    "text, expected",
    [
        ('name = "A"\ndescription = "x\n', r"a.toml:2: toml: "),
        ('description = "no name"\n', r"a.toml: persona.name: a persona needs a non-empty name"),
        ('name = "A"\nfavourite = 3\n', r"a.toml:2: persona.favourite: unknown field"),
        (
            'name = "A"\n\n[role_words]\nforge = 40\n',
            r"a.toml:4: persona.role_words['forge']: weight must be",
        ),
        (
            'name = "A"\n[[lore]]\ntext = "x"\n[[lore]]\nkeys = []\ntext = "y"\n',
            r"a.toml:5: persona.lore[1].keys",
        ),
        ('name = "A"\n[[lore]]\nkeys = ["k"]\ntext = ""\n', r"a.toml:4: persona.lore[0].text: is empty"),
        (
            'name = "A"\n[generation]\ntemperature = 9\n',
            r"a.toml:3: persona.generation.temperature: must be in",
        ),
        ('name = "A"\n[generation]\nbeam = 2\n', r"a.toml:3: persona.generation.beam: unknown setting"),
        ('name = "A"\nbanned_words = ["!!"]\n', r"a.toml:2: persona.banned_words[0]: '!!' has no letters"),
        ('name = "A"\nextends = "missing"\n', r"a.toml:2: persona.extends: no missing.toml"),
        ('name = "A"\nid = "bad id"\n', r"a.toml:2: persona.id: must be 1-64"),
        ('name = "A"\nexamples = [{ user = "hi" }]\n', r"a.toml:2: persona.examples[0]"),
    ],
)
def test_each_kind_of_malformed_toml_gets_its_own_error(tmp_path, text, expected):
    problems = _problems(tmp_path, "a.toml", text)
    assert any(expected in p for p in problems), problems


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    problems = _problems(tmp_path, "a.toml", 'colour = 1\nbanned_words = [""]\n\n[role_words]\nx = "heavy"\n')
    fields = {p.split(": ")[1] for p in problems}
    assert {"persona.colour", "persona.name", "persona.banned_words[0]", "persona.role_words['x']"} <= fields


def test_circular_extends_is_refused(tmp_path):
    (tmp_path / "b.toml").write_text('name = "B"\nextends = "a"\n')
    problems = _problems(tmp_path, "a.toml", 'name = "A"\nextends = "b"\n')
    assert "circular" in problems[0]


def test_bad_cards_are_named(tmp_path):
    assert (
        "no 'chara' or 'ccv3' tEXt chunk"
        in _problems(tmp_path, "c.png", write_png_card(_tiny_png(), {}).replace(b"chara", b"other"))[0]
    )
    assert (
        "not a character card (spec 'v1'"
        in _problems(tmp_path, "c.json", json.dumps({"spec": "v1", "data": {}}))[0]
    )
    assert (
        "truncated PNG chunk"
        in _problems(tmp_path, "d.png", b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x10tEXtchara\x00")[0]
    )


def _tiny_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG")
    return buf.getvalue()


def test_png_card_round_trips_without_loss(tmp_path):
    card = read_png_card(SAMPLES / "salty_mae.png")
    persona = card_to_persona(card)
    assert persona.name == "Salty Mae" and persona.greeting.startswith("Ahoy")
    assert persona.post_history == "Speak like a pirate." and persona.alternate_greetings
    assert [e.order for e in persona.lore] == [10, 20] and persona.lore[0].position == "before_char"
    assert persona.role_words["treasure"] == 2.0 and persona.banned_words == ["navy"]
    assert persona.examples[0].user == "Who are you?"
    assert persona_to_card(persona) == card
    out = tmp_path / "again.png"
    out.write_bytes(write_png_card(_tiny_png(), persona_to_card(persona)))
    assert read_png_card(out) == card and load_persona(out).to_dict() == persona.to_dict() | {"id": "again"}


def test_json_card_with_unknown_fields_keeps_them(tmp_path):
    card = {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "future_top_level": {"x": 1},
        "data": {
            "name": "Nox",
            "description": "A thief.",
            "first_mes": "Shh.",
            "weird_field": [1, 2],
            "character_book": {
                "entries": [
                    {
                        "keys": ["vault"],
                        "content": "The vault code is 7.",
                        "enabled": False,
                        "insertion_order": 3,
                        "unknown": True,
                    }
                ]
            },
        },
    }
    path = tmp_path / "nox.json"
    path.write_text(json.dumps(card))
    persona = load_persona(path)
    assert persona.id == "nox" and persona.lore[0].enabled is False
    assert persona_to_card(persona) == card


def test_toml_persona_exports_to_a_card_and_back():
    brakka = load_persona(SAMPLES / "brakka.toml")
    back = card_to_persona(persona_to_card(brakka))
    for field in (
        "name",
        "description",
        "greeting",
        "role_words",
        "banned_words",
        "examples",
        "generation",
        "style",
        "actions",
    ):
        assert getattr(back, field) == getattr(brakka, field), field
    assert [a.name for a in back.actions] == ["sharpen_weapon", "open_shop"]  # actions travel in the card
    assert [(e.keys, e.text) for e in back.lore] == [(e.keys, e.text) for e in brakka.lore]


def test_lore_is_injected_only_when_triggered_and_within_budget():
    tok = byte_tokenizer()  # one token per byte: budgets are easy to reason about
    persona = Persona(
        name="Sage",
        lore=[
            LoreEntry(["dragon"], "Dragons sleep in winter.", order=1),  # 23 tokens
            LoreEntry(["dragon", "cave"], "The cave is east of the river.", order=2),  # 30 tokens
            LoreEntry(["moon"], "The moon is hollow.", enabled=False),
        ],
        lore_budget_tokens=40,
        lore_scan_turns=1,
    )
    assert turn_context(tok, persona, [], "Nice weather.") == ""
    ctx = turn_context(tok, persona, [], "Tell me about the Dragon!")
    assert "Dragons sleep" in ctx and "cave is east" not in ctx  # the second does not fit in 40 tokens
    assert turn_context(tok, persona, [], "What about the moon?") == ""  # disabled
    old = [Turn("Where is the cave?", "Far away."), Turn("Hm.", "Yes.")]
    assert turn_context(tok, persona, old, "Okay.") == ""  # the cave was 2 turns ago; scan depth is 1
    assert "cave is east" in turn_context(tok, persona, old[:1], "Okay.")


def test_cli_validate_reports_and_fails(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "B"\n[role_words]\nforge = "lots"\n')
    cmd = [sys.executable, "-m", "npc_sdk.cli", "persona", "validate", str(SAMPLES / "zib.toml"), str(bad)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 1
    assert f"{bad}:3: persona.role_words['forge']" in out.stdout and "1 valid (zib), 1 problem" in out.stdout
    ok = subprocess.run(cmd[:-1], capture_output=True, text=True)
    assert ok.returncode == 0


@pytest.mark.parametrize(
    "extensions, field",
    [("0", "data.extensions"), ([1], "data.extensions"), ({"npc_sdk": "x"}, "data.extensions.npc_sdk")],
)
def test_a_card_whose_extensions_are_not_an_object_is_refused_naming_the_field(extensions, field):
    # found by the hypothesis fuzzer: a string here used to raise AttributeError instead of a clear refusal
    card = {"spec": "chara_card_v2", "data": {"name": "Tom", "extensions": extensions}}
    with pytest.raises(PersonaFileError) as exc:
        card_to_persona(card)
    assert [p.field for p in exc.value.problems] == [field]
