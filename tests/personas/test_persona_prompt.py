import numpy as np
import pytest

from npc_sdk.demo import DEMO_PERSONA
from npc_sdk.errors import InvalidInputError
from npc_sdk.personas.persona import Persona
from npc_sdk.personas.prompt import MAX_TEXT_CHARS, Turn, build_prompt

from ..helpers import byte_tokenizer


def test_persona_without_a_name_is_refused():
    with pytest.raises(InvalidInputError) as err:
        Persona(name="  ", description="nobody")
    assert err.value.field == "persona.name"
    with pytest.raises(InvalidInputError, match="persona.name"):
        Persona.from_dict({"description": "nameless"})


def test_unknown_field_and_bad_role_weight_are_named():
    with pytest.raises(InvalidInputError, match="persona.favourite_colour"):
        Persona.from_dict({"name": "A", "favourite_colour": "red"})
    with pytest.raises(InvalidInputError, match=r"persona.role_words\['forge'\]"):
        Persona(name="A", role_words={"forge": 99.0})


def test_prefix_sits_inside_the_current_user_turn_after_history():
    tok = byte_tokenizer()
    table = np.arange(256 * 4, dtype=np.float32).reshape(256, 4)
    old_prefix = np.full((2, 4), -1.0, dtype=np.float32)
    new_prefix = np.full((3, 4), -2.0, dtype=np.float32)
    history = [Turn("hi", "hello", old_prefix)]
    prompt = build_prompt(tok, DEMO_PERSONA, history, "what is that?", new_prefix)
    kinds = ["ids" if isinstance(s, list) else len(s) for s in prompt.segments]
    assert kinds == ["ids", 2, "ids", 3, "ids"]
    text_before_new_prefix = tok.decode(prompt.segments[2])
    assert text_before_new_prefix.endswith("<|im_start|>user\n")
    assert "hello<|im_end|>" in text_before_new_prefix
    assert tok.decode(prompt.segments[4]) == "what is that?<|im_end|>\n<|im_start|>assistant\n"
    embeds = prompt.embed(table)
    assert embeds.shape == (prompt.length, 4)
    # everything before this turn's user block is identical with or without the new turn: reusable KV prefix
    previous = build_prompt(tok, DEMO_PERSONA, [], "hi", old_prefix)
    assert previous.segments[0] == prompt.segments[0][: len(previous.segments[0])]


@pytest.mark.parametrize(
    "text, needle", [("", "empty"), ("   ", "empty"), ("x" * (MAX_TEXT_CHARS + 1), "limit")]
)
def test_bad_player_text_is_named(text, needle):
    with pytest.raises(InvalidInputError) as err:
        build_prompt(byte_tokenizer(), DEMO_PERSONA, [], text)
    assert err.value.field == "text" and needle in str(err.value)
