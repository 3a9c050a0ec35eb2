"""What the decoder reads of a persona (Persona.for_decoder, personas/card_text.py): a card's chat-site scaffolding
taken out, npc-sdk persona files untouched, the stored persona kept as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from npc_sdk.personas.card_text import (
    decoder_greeting,
    first_sentences,
    lore_text,
    spoken,
    without_transcript,
)
from npc_sdk.personas.chat_format import CHATML
from npc_sdk.personas.files import load_persona
from npc_sdk.personas.persona import Example, LoreEntry, Persona
from npc_sdk.personas.prompt import _block_text

from .test_real_cards import REALCARDS

ROOT = Path(__file__).resolve().parents[2]


def test_a_narrated_greeting_keeps_only_what_is_said():
    greeting = (
        '*You wake with a start. Soft light falls through the leaves.*\r\n"Ah, you\'re awake at last." '
        '*She kneels beside you.* "The name\'s Seraphina, guardian of this forest."'
    )
    assert decoder_greeting(greeting) == "Ah, you're awake at last. The name's Seraphina, guardian of this forest."
    assert decoder_greeting("*She only smiles and waits.*") == ""
    assert decoder_greeting("Hmph. Another traveller.") == "Hmph. Another traveller."


def test_long_text_is_cut_at_a_sentence_end_within_the_limit():
    text = "One short sentence here. " * 20
    cut = first_sentences(text.strip(), 60)
    assert cut == "One short sentence here. One short sentence here." and len(cut) <= 60


def test_chat_lines_leave_the_description_and_lore_keeps_the_characters_words():
    description = "{{user}}: Brief introduction?\n{{char}}: Oh hi there!\nMira: Hello.\nMira keeps the gate."
    assert without_transcript(description, "Mira") == "Mira keeps the gate."
    scene = 'Player: "What is Eldoria?" Seraphina: *smiles* "Eldoria is my forest." "I guard it."'
    assert lore_text(scene, "Seraphina") == "Eldoria is my forest. I guard it."
    assert spoken("I'll sharpen it, lad.") == "I'll sharpen it, lad."


def test_persona_files_written_for_npc_sdk_reach_the_decoder_unchanged():
    files = sorted((ROOT / "corpus" / "personas").glob("*.toml")) + sorted(
        (ROOT / "samples" / "personas").glob("*.toml")
    )
    assert len(files) > 50
    for path in files:
        persona = load_persona(path)
        assert _block_text(persona.for_decoder(), CHATML) == _block_text(persona, CHATML), path.name
        for entry in persona.lore:
            assert lore_text(entry.text, persona.name) == entry.text.strip(), path.name


def test_the_original_macro_keeps_the_generated_prompt_and_macros_reach_the_role_encoder():
    card_like = Persona(
        name="Mira",
        description="{{char}} keeps the north gate.",
        system_prompt_override="Write {{char}}'s next reply. {{original}}",
        examples=[Example("Hi", "*waves* Hello, {{user}}."), Example("Hm?", "*only stares*")],
        lore=[LoreEntry(keys=["gate"], text="{{char}}: *points* \"The gate shuts at dusk.\"")],
    )
    prompt = card_like.for_decoder().system_prompt()
    assert prompt.startswith("Write Mira's next reply. You are Mira. Mira keeps the north gate.")
    assert "Mira: Hello, Player." in prompt and "stares" not in prompt  # an example with no words is dropped
    assert "{{" not in card_like.role_text() and "Mira keeps the north gate" in card_like.role_text()
    assert card_like.turn_context(["Is the gate open?"], len) == "(The gate shuts at dusk.)\n"
    assert card_like.description == "{{char}} keeps the north gate."  # the persona itself is as written


@pytest.mark.skipif(not REALCARDS.is_dir(), reason="no real cards (test_real_cards.py says how to get them)")
def test_real_cards_lose_their_scaffolding_but_keep_their_character():
    seraphina = load_persona(REALCARDS / "sillytavern/release-2024-09/default_Seraphina.png")
    block = _block_text(seraphina.for_decoder(), CHATML)
    assert "*" not in block and "<START>" not in block and "\r" not in block
    assert "guardian of this forest" in block and "Seraphina" in block
    firefly = load_persona(REALCARDS / "bronya-rand/Firefly C.json")
    view = firefly.for_decoder()
    assert "Brief introduction?" in firefly.description and "Brief introduction?" not in view.description
    assert "Stellaron Hunters" in view.description and len(view.greeting) <= 200
