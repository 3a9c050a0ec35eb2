"""Character Cards V1, V2 and V3 (JSON, PNG, CHARX) to and from a Persona.

Cards map onto persona fields; everything without an equivalent is kept under `extensions`, so
`persona_to_card(card_to_persona(card)) == card` for V2 and V3 cards. V1 cards (flat TavernAI keys, or
Pygmalion's `char_name`/`char_persona`/...) import as the V2 data they describe and export as V2 or V3.
Containers (PNG chunks, CHARX zips, limits) are in card_files.py; lorebook entries in lorebooks.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInputError
from .card_files import read_png_card, write_png_card
from .lore import parse_decorators
from .lorebooks import book_settings, entry_from_card, entry_to_card
from .persona import Example, LoreEntry, Persona
from .problems import PersonaFileError, Problem

__all__ = ["card_kind", "card_to_persona", "persona_to_card", "read_png_card", "write_png_card"]

CARD_KEY = "chara_card_v2"  # where card fields with no persona equivalent are kept, under `extensions`
OWN_KEY = "npc_sdk"  # where persona fields with no card equivalent go, under the card's data.extensions
SPECS = {"v2": ("chara_card_v2", "2.0"), "v3": ("chara_card_v3", "3.0")}
_V1_ALIASES = {  # V2 data key -> V1 keys holding it (TavernAI first, then Pygmalion/ooba)
    "name": ("name", "char_name"),
    "description": ("description", "char_persona"),
    "personality": ("personality",),
    "scenario": ("scenario", "world_scenario"),
    "first_mes": ("first_mes", "char_greeting"),
    "mes_example": ("mes_example", "example_dialogue"),
}
_V1_ONLY = {"char_name", "char_persona", "world_scenario", "char_greeting", "example_dialogue", "first_mes"}
_BOOK_FIELDS = {"lore_budget_tokens": 200, "lore_scan_turns": 2, "lore_recursion": 0}

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


def parse_examples(mes_example: str, char: str) -> list[Example]:
    """`<START>` blocks of "{{user}}: ..." / "{{char}}: ..." lines -> Example pairs (best effort)."""
    examples, user = [], None
    for raw in mes_example.splitlines():
        line = raw.strip()
        m = re.match(
            r"^(\{\{user\}\}|\{\{char\}\}|<USER>|<BOT>|" + re.escape(char) + r"):\s*(.*)$", line, re.I
        )
        if not m:
            continue
        if m[1].lower() in ("{{user}}", "<user>"):
            user = m[2]
        elif user:
            examples.append(Example(user, m[2]))
            user = None
    return examples


def card_kind(obj: Mapping[str, Any]) -> str | None:
    """ "v1", "v2", "v3", "lorebook", "unknown" (a spec we do not read), or None (no card: an npc-sdk persona)."""
    spec = obj.get("spec")
    if spec is not None:
        known = {"chara_card_v3": "v3", "chara_card_v2": "v2", "lorebook_v3": "lorebook"}
        return known.get(spec, "unknown") if isinstance(spec, str) else "unknown"
    v1_keys = bool(_V1_ONLY & set(obj)) or "mes_example" in obj
    if "entries" in obj and not v1_keys:
        return "lorebook"  # World Info, or a V2 character_book on its own
    return "v1" if v1_keys else None


def _v1_data(card: Mapping[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, aliases in _V1_ALIASES.items():
        values = [card[a] for a in aliases if isinstance(card.get(a), str)]
        if values:
            data[key] = next((v for v in values if v.strip()), values[0])
    return data


def card_to_persona(card: Mapping[str, Any], *, default_id: str = "", source: str = "card") -> Persona:
    def fail(field: str, message: str) -> PersonaFileError:
        return PersonaFileError([Problem(source, None, field, message)])

    kind = card_kind(card)
    if kind == "v1":
        original_data: Mapping[str, Any] = _v1_data(card)
        top = dict(card)
        spec = None
    elif kind in ("v2", "v3"):
        if not isinstance(card.get("data"), Mapping):
            raise fail("data", f"a {card['spec']} card needs a 'data' object")
        original_data = card["data"]
        top = {k: v for k, v in card.items() if k not in ("spec", "spec_version", "data")}
        spec = card["spec"]
    else:
        raise fail(
            "spec",
            f"not a character card (spec {card.get('spec')!r}; known: chara_card_v2, chara_card_v3, "
            "or a V1 card's flat name/description/first_mes keys)",
        )
    data = dict(original_data)
    values: dict[str, Any] = {}
    for key, target in _DATA_MAP.items():
        if key in data:
            values[target] = data.pop(key)
    for key, target in _DATA_MAP.items():
        value = values.get(target)
        if value is None:
            values.pop(target, None)
        elif target == "alternate_greetings":
            if not isinstance(value, list):
                raise fail(f"data.{key}", f"must be a list of text, got {type(value).__name__}")
            values[target] = [g for g in value if isinstance(g, str) and g.strip()]
        elif not isinstance(value, str):
            raise fail(f"data.{key}", f"must be text, got {type(value).__name__}")
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
        entries = book.get("entries") or []
        if not isinstance(entries, list):
            raise fail("data.character_book.entries", "must be a list")
        for i, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                raise fail(f"data.character_book.entries[{i}]", "must be an object")
            lore.append(entry_from_card(entry))
        values.update(book_settings(book))
    elif book is not None:
        raise fail("data.character_book", f"must be an object, got {type(book).__name__}")
    values["lore"] = lore
    values["extensions"] = {
        CARD_KEY: {
            "spec": spec,
            "spec_version": card.get("spec_version"),
            "top": top,
            "data": data,  # mes_example, creator_notes, tags, creator, character_version, extensions, ...
            "character_book": kept_book,
            "present": sorted(k for k in _DATA_MAP if k in original_data),
        }
    }
    values.update(own)
    values.setdefault("id", own.get("id") or _slug(default_id or values["name"]))
    try:
        return Persona.from_dict(values)
    except InvalidInputError as exc:
        raise fail(exc.field, exc.message) from exc


def persona_to_card(persona: Persona, version: str | None = None) -> dict[str, Any]:
    """The persona as a card: `version` "v2" or "v3" (default: the spec it was imported from, else "v2")."""
    kept = dict(persona.extensions.get(CARD_KEY) or {})
    imported = {v[0]: k for k, v in SPECS.items()}.get(kept.get("spec") or "chara_card_v2", "v2")
    version = version or imported
    if version not in SPECS:
        raise ValueError(f"version must be one of {', '.join(SPECS)}, got {version!r}")
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
    kept_book = kept.get("character_book")
    imported_settings = book_settings(kept_book) if isinstance(kept_book, Mapping) else {}
    book_changes = {
        k: getattr(persona, k)
        for k, default in _BOOK_FIELDS.items()
        if getattr(persona, k) != imported_settings.get(k, default)
    }
    if persona.lore or kept.get("character_book") is not None or book_changes:
        book = dict(kept.get("character_book") or {})
        book["entries"] = [entry_to_card(e) for e in persona.lore]
        if "lore_budget_tokens" in book_changes:
            book["token_budget"] = persona.lore_budget_tokens
        if "lore_scan_turns" in book_changes:
            book["scan_depth"] = 2 * persona.lore_scan_turns
        if "lore_recursion" in book_changes:
            book["recursive_scanning"] = persona.lore_recursion > 0
        data["character_book"] = book
    defaults = Persona(name="x")
    modelled = set(_DATA_MAP.values()) | {"lore", "extensions", "examples", *_BOOK_FIELDS}
    own = {k: v for k, v in persona.to_dict().items() if k not in modelled and v != getattr(defaults, k)}
    if kept:
        own.pop("id", None)  # a card's id is its file name
    if own:
        data["extensions"] = {**(data.get("extensions") or {}), OWN_KEY: own}
    spec, spec_version = SPECS[version]
    if version != imported or not kept.get("spec_version"):
        kept["spec_version"] = spec_version
    if version == "v3":
        data.setdefault("group_only_greetings", [])
    elif imported == "v3":  # a V2 backfill of a V3 card: decorators are V3-only
        book = data.get("character_book")
        if isinstance(book, Mapping):
            book = dict(book)
            book["entries"] = [
                {**e, "content": parse_decorators(e["content"])[1]}
                if isinstance(e.get("content"), str)
                else e
                for e in book.get("entries", [])
            ]
            data["character_book"] = book
    card = {"spec": spec, "spec_version": kept["spec_version"], "data": data}
    card.update(kept.get("top") or {})
    return card


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text.strip().lower()).strip("-")[:64] or "persona"
