"""Persona files: TOML written by designers, npc-sdk JSON, and Character Cards V1-V3 (JSON, PNG, CHARX; cards.py).

`load_persona(path)` returns a Persona or raises PersonaFileError listing every problem with file, line and
field. `extends = "base"` inherits from base.toml in the same folder (tables and lists merge; the child wins).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from .card_files import parse_json, read_charx, read_json_object
from .cards import card_kind, card_to_persona, read_png_card
from .lorebooks import Lorebook, read_lorebook
from .persona import ID_PATTERN, Persona
from .problems import PersonaFileError, Problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PERSONA_SUFFIXES = (".toml", ".json", ".png", ".charx")
_TOML_ALIASES = {"system_prompt": "system_prompt_override"}  # file key -> Persona field


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
        alone: dict[str, Any] = {"name": "x", key: data[key]}
        if key == "memories":  # whether a memory may be shared depends on the group (checked on its own below)
            group = data.get("memory_group", "")
            alone["memory_group"] = group if isinstance(group, str) and ID_PATTERN.match(group or "x") else "x"
        try:
            Persona.from_dict(alone)
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


def _read_dict(
    path: Path, seen: tuple[Path, ...] = (), text: str | None = None
) -> tuple[dict[str, Any], str]:
    """The persona dict of a TOML/JSON persona file with `extends` resolved, and the file's text (`text`: what
    the file would hold, read instead of it; `extends` still resolves beside `path`)."""
    name = str(path)
    if text is None:
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


def read_card_object(path: Path) -> dict[str, Any] | None:
    """The card or lorebook object a .png, .charx or card .json holds; None for an npc-sdk persona .json."""
    if path.suffix == ".png":
        return read_png_card(path)
    if path.suffix == ".charx":
        return read_charx(path)[0]
    if path.suffix == ".json":
        raw = read_json_object(path)
        return raw if card_kind(raw) is not None else None
    return None


def load_lorebook(path: str | Path) -> Lorebook | None:
    """The lorebook in a .json file (lorebook_v3, World Info, a bare character_book), or None if it holds none."""
    path = Path(path)
    if path.suffix != ".json":
        return None
    raw = read_json_object(path)
    return read_lorebook(raw, str(path), path.stem) if card_kind(raw) == "lorebook" else None


def _card_in_text(path: Path, text: str) -> dict[str, Any] | None:
    """The card a .json file's text holds (None: an npc-sdk persona, or TOML)."""
    if path.suffix in (".png", ".charx"):
        raise PersonaFileError([Problem(str(path), None, "file", "a card picture or archive holds no text")])
    if path.suffix != ".json":
        return None
    raw = parse_json(text.encode("utf-8"), str(path))
    if not isinstance(raw, dict):
        raise PersonaFileError([Problem(str(path), 1, "json", "the file must hold one object")])
    return raw if card_kind(raw) is not None else None


def load_persona(path: str | Path, text: str | None = None) -> Persona:
    """A persona from a .toml or .json file (npc-sdk), or a Character Card V1/V2/V3 (.json, .png, .charx).

    `text`: what a .toml or .json file would hold, checked instead of the file (an editor's unsaved text; the
    problems still name `path`, and `extends` resolves beside it)."""
    path = Path(path)
    if path.suffix not in PERSONA_SUFFIXES:
        raise PersonaFileError(
            [Problem(str(path), None, "file", f"unknown kind; use {', '.join(PERSONA_SUFFIXES)}")]
        )
    card = read_card_object(path) if text is None else _card_in_text(path, text)
    if card is not None:
        if card_kind(card) == "lorebook":
            raise PersonaFileError(
                [
                    Problem(
                        str(path),
                        None,
                        "file",
                        "a lorebook, not a persona: `npc-sdk persona import CARD LOREBOOK --out DIR` joins it"
                        " to a card",
                    )
                ]
            )
        return card_to_persona(card, default_id=path.stem, source=str(path))
    data, text = _read_dict(path, text=text)
    data.setdefault("id", path.stem)
    problems = collect_problems(data)
    if problems:
        raise PersonaFileError([Problem(str(path), _line_of(text, f), f, m) for f, m in problems])
    return Persona.from_dict(data)


def validate_files(paths: list[Path]) -> tuple[list[Persona], list[Problem]]:
    personas, problems = [], []
    for path in paths:
        try:
            personas.append(load_persona(path))
        except PersonaFileError as exc:
            problems += exc.problems
    return personas, problems
