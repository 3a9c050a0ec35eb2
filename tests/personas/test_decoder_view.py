"""What the decoder reads of a persona (Persona.for_decoder): chat-site markers out, persona files untouched."""

from __future__ import annotations

from pathlib import Path

from npc_sdk.personas.chat_format import CHATML
from npc_sdk.personas.files import load_persona
from npc_sdk.personas.persona import Example, Persona
from npc_sdk.personas.prompt import _block_text, fit_persona

from ..helpers import byte_tokenizer

ROOT = Path(__file__).resolve().parents[2]


def test_persona_files_written_for_npc_sdk_reach_the_decoder_unchanged():
    files = sorted((ROOT / "corpus" / "personas").glob("*.toml")) + sorted(
        (ROOT / "samples" / "personas").glob("*.toml")
    )
    assert len(files) > 50
    for path in files:
        persona = load_persona(path)
        assert _block_text(persona.for_decoder(), CHATML) == _block_text(persona, CHATML), path.name


def test_card_markers_leave_the_prompt_but_stay_in_the_persona():
    card_like = Persona(
        name="Mira",
        description="{{char}} keeps the north gate.\r\n<START>\r\nShe is tired.",
        greeting="*yawns* Halt.\r\nWho goes there?",
        examples=[Example("Hi", "Hello, {{user}}.\r")],
    )
    text = _block_text(card_like.for_decoder(), CHATML)
    assert "\r" not in text and "<START>" not in text and "Mira keeps the north gate.\n\nShe is tired." in text
    tok = byte_tokenizer()
    assert tok.decode(fit_persona(tok, card_like).ids) == text  # what is fitted and fed is the cleaned text
    assert "*yawns* Halt.\nWho goes there?" in text and "Mira: Hello, Player." in text
    assert card_like.description.startswith("{{char}} keeps the north gate.\r\n<START>")  # stored as written


def test_the_original_macro_keeps_the_generated_prompt_and_macros_reach_the_role_encoder():
    card_like = Persona(
        name="Mira",
        description="{{char}} keeps the north gate.",
        system_prompt_override="Write {{char}}'s next reply. {{original}}",
    )
    prompt = card_like.system_prompt()
    assert prompt.startswith("Write Mira's next reply. You are Mira. Mira keeps the north gate.")
    assert Persona(name="Mira", system_prompt_override="Only this.").system_prompt() == "Only this."
    assert "{{" not in card_like.role_text() and "Mira keeps the north gate" in card_like.role_text()
