"""Persona files: TOML written by designers, npc-sdk JSON, and SillyTavern Character Card V2 (JSON or PNG).

`load_persona(path)` returns a Persona or raises PersonaFileError listing every problem with file, line and
field. `extends = "base"` inherits from base.toml in the same folder (tables and lists merge; the child wins).
Cards map onto persona fields; everything without an equivalent is kept under `extensions`, so
`persona_to_card(card_to_persona(card)) == card`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import InvalidInputError
from .persona import Example, LoreEntry, Persona

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PERSONA_SUFFIXES = (".toml", ".json", ".png")
CARD_KEY = "chara_card_v2"  # where card fields with no persona equivalent are kept, under `extensions`
OWN_KEY = "npc_sdk"  # where persona fields with no card equivalent go, under the card's data.extensions
_TOML_ALIASES = {"system_prompt": "system_prompt_override"}  # file key -> Persona field


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}"


class PersonaFileError(InvalidInputError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0]
        super().__init__(first.field, "\n".join(str(p) for p in problems))


# ---- TOML / JSON persona files ------------------------------------------------------------------------------
def _line_of(text: str, field: str) -> int | None:
    """Best-effort line of `field` (persona.role_words['x'], persona.lore[2].keys, ...) in a TOML file."""
    lines = text.splitlines()
    path = field.removeprefix("persona.")
    m = re.match(r"(\w+)(?:\[(\d+)\]|\['(.+?)'\])?(?:\.(\w+))?", path)
    if not m:
        return None
    key, index, sub, attr = m.group(1), m.group(2), m.group(3), m.group(4)
    key = {v: k for k, v in _TOML_ALIASES.items()}.get(key, key)
    header = None
    if index is not None:  # [[lore]] number index
        seen = -1
        for i, ln in enumerate(lines):
            if re.match(rf"\s*\[\[\s*{key}\s*\]\]", ln):
                seen += 1
                if seen == int(index):
                    header = i
                    break
    else:
        header = next((i for i, ln in enumerate(lines) if re.match(rf"\s*\[\s*{key}\s*\]", ln)), None)
    target = sub or attr
    if header is not None:
        if target:
            for i in range(header + 1, len(lines)):
                if re.match(r"\s*\[", lines[i]):
                    break
                if re.match(rf"\s*\"?{re.escape(target)}\"?\s*=", lines[i]):
                    return i + 1
        return header + 1
    for i, ln in enumerate(lines):
        if re.match(rf"\s*{re.escape(key)}\s*=", ln):
            return i + 1
    return None


def collect_problems(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every (field, message) wrong in a persona dict, not just the first."""
    problems: list[tuple[str, str]] = []
    known = {f.name for f in fields(Persona)}
    for key in sorted(set(data) - known):
        problems.append(
            (f"persona.{key}", f"unknown field (known: {', '.join(sorted(known - {'extensions'}))})")
        )
    if not isinstance(data.get("name"), str) or not data.get("name", "").strip():
        problems.append(("persona.name", "a persona needs a non-empty name"))
    for key in sorted(set(data) & known - {"name"}):
        if key == "lore" and isinstance(data[key], list):
            for i, entry in enumerate(data[key]):
                try:
                    Persona.from_dict({"name": "x", "lore": [entry]})
                except InvalidInputError as exc:
                    problems.append((exc.field.replace("lore[0]", f"lore[{i}]"), exc.message))
            continue
        try:
            Persona.from_dict({"name": "x", key: data[key]})
        except InvalidInputError as exc:
            problems.append((exc.field, exc.message))
        except (TypeError, ValueError) as exc:
            problems.append((f"persona.{key}", f"has the wrong type ({exc})"))
    return problems


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in child.items():
        if key in ("role_words", "generation", "extensions") and isinstance(value, Mapping):
            merged[key] = {**base.get(key, {}), **value}
        elif key == "lore" and isinstance(value, list):
            merged[key] = list(base.get(key, [])) + list(value)
        elif key == "banned_words" and isinstance(value, list):
            merged[key] = list(dict.fromkeys(list(base.get(key, [])) + list(value)))
        else:
            merged[key] = value
    merged.pop("extends", None)
    return merged


def _read_dict(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict[str, Any], str]:
    """The persona dict of a TOML/JSON persona file with `extends` resolved, and the file's text."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PersonaFileError([Problem(name, None, "file", f"cannot be read ({exc})")]) from exc
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            raise PersonaFileError([Problem(name, int(m[1]) if m else None, "toml", str(exc))]) from exc
        data = {_TOML_ALIASES.get(k, k): v for k, v in data.items()}
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PersonaFileError([Problem(name, exc.lineno, "json", exc.msg)]) from exc
        if not isinstance(data, dict):
            raise PersonaFileError([Problem(name, 1, "json", "the file must hold one object")])
    parent = data.get("extends")
    if parent is not None:
        if not isinstance(parent, str) or not parent.strip():
            raise PersonaFileError(
                [Problem(name, _line_of(text, "extends"), "persona.extends", "must be a persona id")]
            )
        base_path = next(
            (
                path.parent / f"{parent}{s}"
                for s in (".toml", ".json")
                if (path.parent / f"{parent}{s}").is_file()
            ),
            None,
        )
        if base_path is None:
            raise PersonaFileError(
                [
                    Problem(
                        name,
                        _line_of(text, "extends"),
                        "persona.extends",
                        f"no {parent}.toml or {parent}.json beside this file",
                    )
                ]
            )
        if base_path.resolve() in seen:
            raise PersonaFileError(
                [
                    Problem(
                        name,
                        _line_of(text, "extends"),
                        "persona.extends",
                        f"circular: {parent} extends back to this file",
                    )
                ]
            )
        base, _ = _read_dict(base_path, (*seen, path.resolve()))
        base.pop("id", None)
        data = _merge(base, data)
    data.pop("extends", None)
    return data, text


def load_persona(path: str | Path) -> Persona:
    """A persona from a .toml, .json (npc-sdk or Character Card V2) or .png (card) file."""
    path = Path(path)
    if path.suffix == ".png":
        return card_to_persona(read_png_card(path), default_id=path.stem)
    if path.suffix not in (".toml", ".json"):
        raise PersonaFileError(
            [Problem(str(path), None, "file", f"unknown kind; use {', '.join(PERSONA_SUFFIXES)}")]
        )
    if path.suffix == ".json":
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raw = None
        if isinstance(raw, dict) and "spec" in raw:
            return card_to_persona(raw, default_id=path.stem, source=str(path))
    data, text = _read_dict(path)
    data.setdefault("id", path.stem)
    problems = collect_problems(data)
    if problems:
        raise PersonaFileError([Problem(str(path), _line_of(text, f), f, m) for f, m in problems])
    return Persona.from_dict(data)


# ---- Character Card V2 ---------------------------------------------------------------------------------------
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
    own = dict((data.get("extensions") or {}).get(OWN_KEY) or {})
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


def validate_files(paths: list[Path]) -> tuple[list[Persona], list[Problem]]:
    personas, problems = [], []
    for path in paths:
        try:
            personas.append(load_persona(path))
        except PersonaFileError as exc:
            problems += exc.problems
    return personas, problems
