"""Property-based fuzzing of every decoder of outside input: each input is accepted or refused with a clear
InvalidInputError naming the field; nothing else ever escapes (no crash, no other exception type)."""

from __future__ import annotations

import io
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from npc_sdk._proto.npc.v1 import npc_pb2 as pb
from npc_sdk.errors import InvalidInputError
from npc_sdk.personas.cards import card_to_persona
from npc_sdk.personas.files import load_persona
from npc_sdk.personas.persona import Persona
from npc_sdk.personas.problems import PersonaFileError
from npc_sdk.personas.prompt import check_text
from npc_sdk.runtime.generation import GenerationConfig
from npc_sdk.wire import config_from_proto, image_from_proto, persona_from_proto

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _png(w: int = 8, h: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


@FUZZ
@given(
    data=st.one_of(st.binary(max_size=300), st.builds(lambda n: _png()[:n], st.integers(0, 120))),
    encoding=st.integers(-2, 6),
    width=st.integers(-5, 100_000),
    height=st.integers(-5, 100_000),
    bottom_up=st.booleans(),
)
def test_screenshots_decode_or_are_refused_by_field(data, encoding, width, height, bottom_up):
    msg = pb.Image(data=data, encoding=encoding, width=width, height=height, bottom_up=bottom_up)
    try:
        image = image_from_proto(msg)
    except InvalidInputError as exc:
        assert exc.field.startswith("screenshot")
    else:
        assert image.width * image.height > 0


def test_png_declaring_a_giant_size_is_refused_before_decoding():
    data = bytearray(_png(1, 1))
    data[16:24] = (100_000).to_bytes(4, "big") * 2
    with pytest.raises(InvalidInputError, match="screenshot"):
        image_from_proto(pb.Image(data=bytes(data), encoding=pb.Image.PNG))


@FUZZ
@given(
    max_tokens=st.one_of(st.none(), st.integers(-10, 5000)),
    temperature=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32)),
    top_p=st.one_of(st.none(), st.floats(-1, 2, width=32)),
    top_k=st.one_of(st.none(), st.integers(-5, 10**6)),
    repetition_penalty=st.one_of(st.none(), st.floats(-1, 10, width=32)),
    stop=st.lists(st.text(max_size=5), max_size=10),
)
def test_generation_values_at_and_past_their_bounds(
    max_tokens, temperature, top_p, top_k, repetition_penalty, stop
):
    fields = {
        k: v
        for k, v in dict(
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            repetition_penalty=repetition_penalty,
        ).items()
        if v is not None
    }
    msg = pb.GenerationConfig(stop=stop, **fields)
    try:
        config = config_from_proto(msg, GenerationConfig())
    except InvalidInputError as exc:
        assert exc.field.startswith("generation.")
    else:
        assert (
            1 <= config.max_tokens <= 1024 and 0 <= config.temperature <= 5 and not math.isnan(config.top_p)
        )


@FUZZ
@given(st.one_of(st.text(max_size=3000), st.binary(max_size=200).map(lambda b: b.decode("utf-8", "replace"))))
def test_player_text_is_accepted_or_refused_by_field(text):
    try:
        assert check_text(text) == text
    except InvalidInputError as exc:
        assert exc.field == "text"


def test_a_megabyte_of_text_is_refused_quickly():
    with pytest.raises(InvalidInputError, match="text: is 1048576 characters"):
        check_text("x" * (1 << 20))


@FUZZ
@given(
    name=st.text(max_size=20),
    role_words=st.dictionaries(st.text(max_size=8), st.floats(allow_nan=True, width=32), max_size=4),
    banned=st.lists(st.text(max_size=6), max_size=4),
    lore_keys=st.lists(st.text(max_size=6), max_size=3),
)
def test_persona_messages_are_accepted_or_refused_by_field(name, role_words, banned, lore_keys):
    msg = pb.Persona(
        name=name,
        role_words=role_words,
        banned_words=banned,
        lore=[pb.LoreEntry(keys=lore_keys, text="t", enabled=True)],
    )
    try:
        persona = persona_from_proto(msg)
    except InvalidInputError as exc:
        assert exc.field.startswith("persona")
    else:
        assert isinstance(persona, Persona) and persona.name.strip()


toml_values = st.recursive(
    st.one_of(st.text(max_size=8), st.integers(), st.floats(allow_nan=False), st.booleans()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@FUZZ
@given(
    body=st.one_of(
        st.text(max_size=400),
        st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "description",
                    "role_words",
                    "lore",
                    "banned_words",
                    "generation",
                    "examples",
                    "extends",
                    "id",
                    "greeting",
                    "whatever",
                ]
            ),
            toml_values,
            max_size=6,
        ),
    )
)
def test_persona_files_load_or_report_problems(tmp_path_factory, body):
    folder = tmp_path_factory.mktemp("p")
    path = folder / ("p.toml" if isinstance(body, str) else "p.json")
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    try:
        persona = load_persona(path)
    except PersonaFileError as exc:
        assert exc.problems and all(str(p).startswith(str(path)) for p in exc.problems)
    else:
        assert persona.name.strip()


@FUZZ
@given(
    card=st.dictionaries(st.sampled_from(["spec", "spec_version", "data"]), toml_values, max_size=3),
    data=st.dictionaries(
        st.sampled_from(
            ["name", "first_mes", "character_book", "mes_example", "extensions", "alternate_greetings"]
        ),
        toml_values,
        max_size=5,
    ),
)
def test_v2_cards_import_or_are_refused(card, data):
    card = dict(card)
    if "data" in card:
        card["spec"], card["data"] = "chara_card_v2", data
    try:
        persona = card_to_persona(card)
    except PersonaFileError as exc:
        assert exc.problems
    else:
        assert persona.name.strip()


@FUZZ
@given(
    spec=st.sampled_from(["chara_card_v2", "chara_card_v3", None]),
    root=st.dictionaries(
        st.sampled_from(["name", "char_name", "char_persona", "first_mes", "mes_example"]), toml_values
    ),
    entries=st.lists(
        st.dictionaries(
            st.sampled_from(
                [
                    "keys",
                    "key",
                    "content",
                    "secondary_keys",
                    "keysecondary",
                    "selective",
                    "selectiveLogic",
                    "constant",
                    "position",
                    "depth",
                    "order",
                    "insertion_order",
                    "priority",
                    "use_regex",
                    "disable",
                    "scanDepth",
                    "extensions",
                    "comment",
                ]
            ),
            toml_values,
            max_size=8,
        ),
        max_size=4,
    ),
)
def test_v1_v3_cards_and_lorebooks_import_or_are_refused(spec, root, entries):
    """Any shape of card or lorebook entry imports to a valid persona or is refused naming a field."""
    from npc_sdk.personas.lorebooks import read_lorebook

    card = (
        dict(root)
        if spec is None
        else {"spec": spec, "data": {**root, "name": "N", "character_book": {"entries": entries}}}
    )
    try:
        persona = card_to_persona(card)
    except PersonaFileError as exc:
        assert exc.problems
    else:
        assert persona.name.strip()
        persona.validate()
    try:
        book = read_lorebook({"entries": {str(i): e for i, e in enumerate(entries)}}, "wi.json")
    except PersonaFileError as exc:
        assert exc.problems
    else:
        Persona(name="x", lore=book.entries).turn_context(["a key"], len)
