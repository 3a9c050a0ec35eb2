"""Real published cards and lorebooks (../shared/realcards, never copied here): import, round trip, lore, export.

Their licences are mixed, so they are read where they lie; without the folder these tests skip and say so, unless
NPC_SDK_REQUIRE_REALCARDS=1 (CI sets it), which makes them fail instead. Set NPC_SDK_REALCARDS to read them from
elsewhere.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from npc_sdk.personas.card_files import png_text_chunks, read_png_card, write_png_card
from npc_sdk.personas.cards import CARD_KEY, card_to_persona, persona_to_card
from npc_sdk.personas.files import load_lorebook, load_persona
from npc_sdk.personas.lore import lore_index
from npc_sdk.personas.persona import Persona
from npc_sdk.personas.prompt import fit_persona

from ..helpers import byte_tokenizer

ROOT = Path(__file__).resolve().parents[2]
REALCARDS = Path(os.environ.get("NPC_SDK_REALCARDS", ROOT.parent / "shared" / "realcards"))
MISSING = f"no real cards at {REALCARDS} (../shared/realcards, or set NPC_SDK_REALCARDS)"
REQUIRED = os.environ.get("NPC_SDK_REQUIRE_REALCARDS") == "1"
pytestmark = pytest.mark.skipif(not REALCARDS.is_dir() and not REQUIRED, reason=MISSING)


@pytest.fixture(autouse=True)
def _realcards_present() -> None:
    """With NPC_SDK_REQUIRE_REALCARDS=1 a missing folder fails every test here instead of skipping it."""
    if not REALCARDS.is_dir():
        pytest.fail(f"NPC_SDK_REQUIRE_REALCARDS=1 but {MISSING}")


CARDS = {  # file -> (spec read, name, lore entries)
    "sillytavern/release-2024-09/default_Seraphina.png": ("chara_card_v2", "Seraphina", 4),
    "sillytavern/staging-2024-10/default_Seraphina.png": ("chara_card_v3", "Seraphina", 4),
    "sillytavern-content/contest_Assistant_Sakana.png": ("chara_card_v2", "Sakana", 14),
    "aicharlib/melina.png": ("chara_card_v2", "Melina", 0),
    "bronya-rand/Natasha.card.png": (None, "Natasha", 0),
    "bronya-rand/Natasha (no scenario).json": (None, "Natasha", 0),
    "bronya-rand/Firefly C.png": ("chara_card_v3", "Firefly", 17),
    "bronya-rand/Firefly C.json": ("chara_card_v3", "Firefly", 17),
    "bronya-rand/Aether.json": ("chara_card_v2", "Aether", 119),
}
LOREBOOKS = {  # file -> entries
    "sillytavern/staging-2024-10/Eldoria.json": 4,
    "sillytavern/history-2023-02/Toaru.json": 18,
    "bronya-rand/HSR.json": 251,
    "smokycamera/!通用战斗系统约束.json": 4,
}


def test_the_list_covers_every_file_there():
    files = {str(p.relative_to(REALCARDS)) for p in REALCARDS.rglob("*") if p.is_file() and p.suffix != ".md"}
    assert files == set(CARDS) | set(LOREBOOKS)


@pytest.mark.parametrize("name", sorted(CARDS))
def test_every_real_card_imports_with_its_spec_name_and_lore(name):
    spec, char, entries = CARDS[name]
    persona = load_persona(REALCARDS / name)
    assert persona.name == char and persona.extensions[CARD_KEY]["spec"] == spec
    assert len(persona.lore) == entries and len(persona.description) > 1000
    assert persona.greeting  # every one of them opens with a first message


def test_spot_checks_per_spec_version():
    v1 = load_persona(REALCARDS / "bronya-rand/Natasha.card.png")
    assert v1.extensions[CARD_KEY]["top"]["metadata"]["tool"]["name"] == "AI Character Editor"
    hybrid = load_persona(
        REALCARDS / "bronya-rand/Natasha (no scenario).json"
    )  # Pygmalion keys beside TavernAI
    assert hybrid.greeting and hybrid.description
    melina = load_persona(REALCARDS / "aicharlib/melina.png")  # pure V2: nothing at the root
    assert "pygmalion_id" in melina.extensions[CARD_KEY]["data"]["extensions"] and melina.examples
    aether = load_persona(REALCARDS / "bronya-rand/Aether.json")
    assert any("\u200d" in t for t in [aether.description, aether.greeting, *(e.text for e in aether.lore)])
    assert "\r\n" in aether.description or any("\r\n" in e.text for e in aether.lore)  # CRLF kept as written
    sakana = load_persona(REALCARDS / "sillytavern-content/contest_Assistant_Sakana.png")  # eXIf after tEXt
    assert sakana.lore[0].position == "after_char" and "program" in sakana.lore[0].keys
    seraphina = load_persona(REALCARDS / "sillytavern/staging-2024-10/default_Seraphina.png")
    assert all(e.use_regex for e in seraphina.lore)  # SillyTavern's V3 export marks plain words as regex
    assert seraphina.lore_budget_tokens == 600  # the book sets no token_budget: the import default
    ctx = seraphina.turn_context(["Is this a magical forest?"], lambda s: len(s) // 4)
    assert "Eldoria" in ctx and "{{char}}" not in ctx and "Seraphina" in ctx


def test_v2_and_v3_copies_of_the_same_card_agree():
    png = REALCARDS / "sillytavern/staging-2024-10/default_Seraphina.png"
    chunks = png_text_chunks(png.read_bytes(), str(png))
    v2, v3 = (json.loads(base64.b64decode(chunks[k])) for k in ("chara", "ccv3"))
    a, b = card_to_persona(v2), card_to_persona(v3)
    assert a.to_dict() | {"extensions": {}} == b.to_dict() | {"extensions": {}}
    firefly_png = load_persona(REALCARDS / "bronya-rand/Firefly C.png")
    firefly_json = load_persona(REALCARDS / "bronya-rand/Firefly C.json")
    assert [e.keys for e in firefly_png.lore] == [e.keys for e in firefly_json.lore]
    assert firefly_png.name == firefly_json.name and len(firefly_png.description) == len(
        firefly_json.description
    )


@pytest.mark.parametrize("name", sorted(n for n, (spec, _, _) in CARDS.items() if spec))
def test_v2_and_v3_cards_export_back_exactly(name):
    path = REALCARDS / name
    card = read_png_card(path) if path.suffix == ".png" else json.loads(path.read_text(encoding="utf-8"))
    assert persona_to_card(card_to_persona(card)) == card


def test_png_export_carries_both_chunks_and_readers_of_either_get_the_card(tmp_path):
    persona = load_persona(REALCARDS / "bronya-rand/Firefly C.json")
    persona.lore[0].keys.append("who are you")  # an edit must reach both chunks
    image = (REALCARDS / "aicharlib/melina.png").read_bytes()
    out = tmp_path / "firefly.png"
    out.write_bytes(write_png_card(image, persona_to_card(persona, "v2"), persona_to_card(persona, "v3")))
    chunks = png_text_chunks(out.read_bytes(), str(out))
    v2, v3 = (json.loads(base64.b64decode(chunks[k])) for k in ("chara", "ccv3"))
    assert v2["spec"] == "chara_card_v2" and v3["spec"] == "chara_card_v3"
    assert v3["data"]["character_book"]["entries"][0]["keys"][-1] == "who are you"
    assert v2["data"]["character_book"]["entries"][0]["keys"][-1] == "who are you"
    back = load_persona(out)  # ccv3 is read first
    assert back.extensions[CARD_KEY]["spec"] == "chara_card_v3" and back.lore[0].keys == persona.lore[0].keys


def test_a_charx_zip_imports_like_its_card_json(tmp_path):
    import zipfile

    card_json = (REALCARDS / "bronya-rand/Firefly C.json").read_bytes()
    charx = tmp_path / "firefly.charx"
    with zipfile.ZipFile(charx, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("card.json", card_json)
        z.writestr("assets/icon/images/main.png", (REALCARDS / "aicharlib/melina.png").read_bytes())
    a = load_persona(charx)
    b = load_persona(REALCARDS / "bronya-rand/Firefly C.json")
    assert a.to_dict() | {"id": ""} == b.to_dict() | {"id": ""}


@pytest.mark.parametrize("name", sorted(LOREBOOKS))
def test_every_real_lorebook_imports_with_defaults_filled(name):
    book = load_lorebook(REALCARDS / name)
    assert book is not None and len(book.entries) == LOREBOOKS[name]
    Persona(name="x", lore=book.entries)  # every entry passes the persona's checks
    if "Toaru" in name:  # the oldest shape: no disable, position or depth in the file
        assert all(e.enabled and e.position == "before_char" and e.depth == 4 for e in book.entries)


def test_the_251_entry_world_info_fires_the_right_entries_within_the_budget():
    book = load_lorebook(REALCARDS / "bronya-rand/HSR.json")
    persona = Persona(name="Guide", lore=book.entries, lore_budget_tokens=300)
    tok = byte_tokenizer()
    count = lambda s: len(tok.encode(s, add_special_tokens=False).ids)  # noqa: E731

    def names(line: str, history: tuple[str, ...] = ()) -> set[str]:
        chosen = lore_index(persona).select([line, *history], count, persona.lore_budget_tokens)
        assert sum(count(p.body) for p in chosen) <= persona.lore_budget_tokens
        return {p.entry.name for p in chosen}

    assert names("Tell me about the Astral Express.") == {"Astral Express"}
    assert names("What do the Stellaron Hunters want?") >= {"Stellaron Hunters"}
    assert names("Have you been to Boulder Town or Rivet Town?") == {"Boulder Town", "Rivet Town"}
    assert names("I want to fly a starskiff.") == {
        "Starskiff"
    }  # "Starskiff Haven" also needs its secondary key
    assert "Starskiff Haven" in names("Where do starskiffs dock? The starskiff haven?")
    assert names("Nice weather today.") == set()
    assert "Jarilo-VI [Pre-Belobog]" not in " ".join(names("Jarilo-VI is cold."))  # disabled in the file
    many = "Astral Express, Herta Space Station, Boulder Town, Rivet Town, Cloudford, Overworld, Underworld"
    assert len(names(many)) < 7  # the budget cuts


def test_cjk_world_info_fires_its_constant_entry_and_substring_keys():
    book = load_lorebook(REALCARDS / "smokycamera/!通用战斗系统约束.json")
    constants = [e for e in book.entries if e.constant]
    assert constants and not constants[0].keys
    persona = Persona(name="x", lore=book.entries, lore_budget_tokens=2000)
    assert persona.turn_context(["你好"], len)  # the constant entry needs no key


def test_long_cards_fit_the_persona_budget_and_trimming_is_said():
    firefly = load_persona(REALCARDS / "bronya-rand/Firefly C.json")
    tok = byte_tokenizer()  # a byte per token: the 7,792-character description is ~8,000 tokens here
    fitted = fit_persona(tok, firefly, 3072)
    assert len(fitted.ids) <= 3072 and any(t.startswith("description") for t in fitted.trimmed)
    roomy = fit_persona(tok, firefly, 20000)
    assert not roomy.trimmed and len(roomy.ids) > 8000


def test_cli_import_writes_toml_with_lore_and_reports_what_was_dropped(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "npc_sdk.cli",
        "persona",
        "import",
        str(REALCARDS / "sillytavern/release-2024-09/default_Seraphina.png"),
        str(REALCARDS / "sillytavern/history-2023-02/Toaru.json"),
        "--out",
        str(tmp_path),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "card-only fields" in out.stdout and "creator_notes" in out.stdout
    persona = load_persona(tmp_path / "default_seraphina.toml")
    assert persona.name == "Seraphina" and len(persona.lore) == 4 + 18
    validate = [
        sys.executable,
        "-m",
        "npc_sdk.cli",
        "persona",
        "validate",
        str(tmp_path / "default_seraphina.toml"),
    ]
    assert subprocess.run(validate, capture_output=True, text=True).returncode == 0
    again = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8")
    assert again.returncode == 1 and "--force" in again.stdout  # nothing is overwritten silently


@pytest.mark.slow
def test_a_long_real_card_talks_on_the_real_model_without_trimming(runtime_int4, caplog):
    """Firefly's 7,792-character description (~2,100 tokens) fits the 4,096-position context whole."""
    from npc_sdk.runtime.conversation import Conversation
    from npc_sdk.runtime.generation import GenerationConfig

    firefly = load_persona(REALCARDS / "bronya-rand/Firefly C.json")
    fitted = fit_persona(runtime_int4.tokenizer, firefly, runtime_int4.persona_tokens)
    assert not fitted.trimmed and 1500 < len(fitted.ids) <= runtime_int4.persona_tokens
    cfg = GenerationConfig(temperature=0.0, max_tokens=12)
    with caplog.at_level("WARNING", logger="npc_sdk.personas"), Conversation(runtime_int4, firefly) as conv:
        first = conv.reply("Who are you?", config=cfg, use_prefix=False)
        second = conv.reply("Tell me about SAM.", config=cfg, use_prefix=False)  # a lore key
    assert first.text.strip() and second.text.strip()
    assert first.usage.prompt_tokens > len(fitted.ids) and second.usage.cached_tokens >= len(fitted.ids)
    assert not [r for r in caplog.records if "does not fit" in r.getMessage()]
    small = fit_persona(runtime_int4.tokenizer, firefly, 1024)  # a smaller context trims, and says what
    assert len(small.ids) <= 1024 and small.trimmed
