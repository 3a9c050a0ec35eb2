"""SillyTavern Character Card V2 (JSON, or PNG with a `chara` chunk) to and from a Persona.

Cards map onto persona fields; everything without an equivalent is kept under `extensions`, so
`persona_to_card(card_to_persona(card)) == card`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from .persona import Example, LoreEntry, Persona
from .problems import PersonaFileError, Problem

CARD_KEY = "chara_card_v2"  # where card fields with no persona equivalent are kept, under `extensions`
OWN_KEY = "npc_sdk"  # where persona fields with no card equivalent go, under the card's data.extensions


_DATA_MAP = {  # card data key -> persona field
    "name": "name",
    "description": "description",
    "personality": "personality",
    "scenario": "scenario",
    "first_mes": "greeting",
    "system_prompt": "system_prompt_override",
    "post_history_instructions": "post_history",
    "alternate_greetings": "alternate_greetings",
}
_ENTRY_MAP = {"keys": "keys", "content": "text", "enabled": "enabled", "insertion_order": "order"}


def parse_examples(mes_example: str, char: str) -> list[Example]:
    """`<START>` blocks of "{{user}}: ..." / "{{char}}: ..." lines -> Example pairs (best effort)."""
    examples, user = [], None
    for raw in mes_example.splitlines():
        line = raw.strip()
        m = re.match(r"^(\{\{user\}\}|\{\{char\}\}|" + re.escape(char) + r"):\s*(.*)$", line)
        if not m:
            continue
        if m[1] == "{{user}}":
            user = m[2]
        elif user:
            examples.append(Example(user, m[2]))
            user = None
    return examples


def card_to_persona(card: Mapping[str, Any], *, default_id: str = "", source: str = "card") -> Persona:
    def fail(field: str, message: str) -> PersonaFileError:
        return PersonaFileError([Problem(source, None, field, message)])

    if card.get("spec") != "chara_card_v2" or not isinstance(card.get("data"), Mapping):
        raise fail("spec", "not a Character Card V2 (spec must be 'chara_card_v2' with a 'data' object)")
    data = dict(card["data"])
    values: dict[str, Any] = {}
    for key, target in _DATA_MAP.items():
        if key in data:
            values[target] = data.pop(key)
    if not isinstance(values.get("name"), str) or not values.get("name", "").strip():
        raise fail("data.name", "a card needs a non-empty name")
    extensions = data.get("extensions") or {}
    if not isinstance(extensions, Mapping):
        raise fail("data.extensions", f"must be an object, got {type(extensions).__name__}")
    own_value = extensions.get(OWN_KEY) or {}
    if not isinstance(own_value, Mapping):
        raise fail(f"data.extensions.{OWN_KEY}", f"must be an object, got {type(own_value).__name__}")
    own = dict(own_value)
    if own:
        data["extensions"] = {k: v for k, v in data["extensions"].items() if k != OWN_KEY}
        if not data["extensions"]:
            data.pop("extensions")
    mes_example = data.get("mes_example", "")
    if "examples" not in own:
        values["examples"] = (
            parse_examples(mes_example, values["name"]) if isinstance(mes_example, str) else []
        )
    lore: list[LoreEntry] = []
    book = data.pop("character_book", None)
    kept_book = None
    if isinstance(book, Mapping):
        kept_book = {k: v for k, v in book.items() if k != "entries"}
        for i, entry in enumerate(book.get("entries") or []):
            if not isinstance(entry, Mapping):
                raise fail(f"data.character_book.entries[{i}]", "must be an object")
            mapped = {_ENTRY_MAP[k]: v for k, v in entry.items() if k in _ENTRY_MAP}
            extra = {k: v for k, v in entry.items() if k not in _ENTRY_MAP}
            keys = mapped.get("keys") or []
            lore.append(
                LoreEntry(
                    list(keys),
                    mapped.get("text", ""),
                    bool(mapped.get("enabled", True)),
                    int(mapped.get("order", 100)),
                    extra,
                )
            )
    values["lore"] = lore
    values["extensions"] = {
        CARD_KEY: {
            "spec_version": card.get("spec_version"),
            "top": {k: v for k, v in card.items() if k not in ("spec", "spec_version", "data")},
            "data": data,  # mes_example, creator_notes, tags, creator, character_version, extensions, ...
            "character_book": kept_book,
            "present": sorted(k for k in _DATA_MAP if k in card["data"]),
        }
    }
    values.update(own)
    values.setdefault("id", own.get("id") or _slug(default_id or values["name"]))
    try:
        return Persona.from_dict(values)
    except InvalidInputError as exc:
        raise fail(exc.field, exc.message) from exc


def persona_to_card(persona: Persona) -> dict[str, Any]:
    kept = dict(persona.extensions.get(CARD_KEY) or {})
    data: dict[str, Any] = dict(kept.get("data") or {})
    present = set(kept.get("present") or _DATA_MAP)
    for key, target in _DATA_MAP.items():
        value = getattr(persona, target)
        if key in present or value:
            data[key] = list(value) if isinstance(value, list) else value
    examples = parse_examples(data.get("mes_example", ""), persona.name) if "mes_example" in data else []
    if examples != persona.examples:
        data["mes_example"] = "".join(
            f"<START>\n{{{{user}}}}: {e.user}\n{{{{char}}}}: {e.npc}\n" for e in persona.examples
        )
    if persona.lore or kept.get("character_book") is not None:
        book = dict(kept.get("character_book") or {})
        book["entries"] = [
            {
                **e.extensions,
                "keys": list(e.keys),
                "content": e.text,
                "enabled": e.enabled,
                "insertion_order": e.order,
            }
            for e in persona.lore
        ]
        data["character_book"] = book
    defaults = Persona(name="x")
    own = {
        k: v
        for k, v in persona.to_dict().items()
        if k not in set(_DATA_MAP.values()) | {"lore", "extensions", "examples"} and v != getattr(defaults, k)
    }
    if kept:
        own.pop("id", None)  # a card's id is its file name
    if own:
        data["extensions"] = {**(data.get("extensions") or {}), OWN_KEY: own}
    card = {"spec": "chara_card_v2", "spec_version": kept.get("spec_version") or "2.0", "data": data}
    card.update(kept.get("top") or {})
    return card


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text.strip().lower()).strip("-")[:64] or "persona"


# ---- PNG cards (tEXt chunk "chara", base64 JSON) -------------------------------------------------------------
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunks(png: bytes):
    if not png.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        body = png[pos + 8 : pos + 8 + length]
        if len(body) != length:
            raise ValueError("truncated PNG chunk")
        yield kind, body, pos
        pos += 12 + length


def read_png_card(path: str | Path) -> dict[str, Any]:
    name = str(path)
    try:
        png = Path(path).read_bytes()
        for kind, body, _ in _chunks(png):
            if kind == b"tEXt" and body.startswith(b"chara\x00"):
                card = json.loads(base64.b64decode(body[6:], validate=True).decode("utf-8"))
                if not isinstance(card, dict):
                    raise ValueError("the chara chunk does not hold a JSON object")
                return card
    except (OSError, ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise PersonaFileError([Problem(name, None, "chara", f"unreadable card ({exc})")]) from exc
    raise PersonaFileError(
        [Problem(name, None, "chara", "this PNG has no 'chara' tEXt chunk (not a character card)")]
    )


def write_png_card(image_png: bytes, card: Mapping[str, Any]) -> bytes:
    """`image_png` with a 'chara' tEXt chunk holding `card` (any old one replaced), before IEND."""
    body = b"chara\x00" + base64.b64encode(json.dumps(card, ensure_ascii=False).encode("utf-8"))
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    out = bytearray(_PNG_SIGNATURE)
    for kind, payload, pos in _chunks(image_png):
        if kind == b"tEXt" and payload.startswith(b"chara\x00"):
            continue
        if kind == b"IEND":
            out += chunk
        out += image_png[pos : pos + 12 + len(payload)]
    return bytes(out)
