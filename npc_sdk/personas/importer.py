"""`npc-sdk persona import`: cards and lorebooks in, persona TOML out, with a report of what did not carry over.

Lorebooks given with cards join every card of the same command; lorebooks given alone become lore-only TOML
files that personas pull in with `extends`. The TOML holds what a persona models; card-only fields (creator
notes, tags, assets, ...) are listed as dropped, since they live on only in a card export.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from .actions import action_to_dict
from .card_files import read_charx
from .cards import CARD_KEY, _slug, card_kind, card_to_persona
from .files import load_persona, read_card_object
from .lorebooks import Lorebook, describe_entries, read_lorebook
from .persona import LoreEntry, Persona
from .problems import PersonaFileError, Problem

_UNSUPPORTED_MACRO = re.compile(
    r"\{\{\s*(random|pick|roll|time|date|idle_duration|lastMessage|original|input)\b", re.I
)


@dataclass
class Imported:
    source: Path
    persona: Persona | None = None  # a card
    book: Lorebook | None = None  # a lorebook
    notes: list[str] = field(default_factory=list)


def import_file(path: Path) -> Imported:
    card = read_card_object(path)
    if card is None:
        raise PersonaFileError([Problem(str(path), None, "file", "neither a character card nor a lorebook")])
    if card_kind(card) == "lorebook":
        book = read_lorebook(card, str(path), path.stem)
        return Imported(path, book=book, notes=list(book.notes))
    persona = card_to_persona(card, default_id=path.stem, source=str(path))
    item = Imported(path, persona=persona)
    kept = persona.extensions.get(CARD_KEY) or {}
    spec = kept.get("spec") or "V1 (no spec)"
    item.notes.append(f"read as {spec}")
    dropped = sorted(k for k in (kept.get("data") or {}) if k != "mes_example")
    if dropped:
        item.notes.append("card-only fields, kept in card exports but not in the TOML: " + ", ".join(dropped))
    if path.suffix == ".charx":
        assets = read_charx(path)[1]
        if assets:
            item.notes.append(f"{len(assets)} CHARX assets not imported (a persona holds no images)")
    mes = (kept.get("data") or {}).get("mes_example")
    if isinstance(mes, str) and mes.strip() and len(persona.examples) < mes.count("<START>"):
        item.notes.append(
            f"example dialogue: {len(persona.examples)} exchange(s) read from {mes.count('<START>')} <START> blocks "
            "(only '{{user}}: ...' / '{{char}}: ...' line pairs are understood)"
        )
    texts = [persona.description, persona.personality, persona.scenario, persona.greeting]
    texts += [e.text for e in persona.lore]
    macros = sorted({m[1].lower() for t in texts for m in _UNSUPPORTED_MACRO.finditer(t)})
    if macros:
        item.notes.append(
            "macros left as written (not expanded): " + ", ".join("{{" + m + "}}" for m in macros)
        )
    item.notes += describe_entries(persona.lore)
    return item


def persona_toml(persona: Persona) -> str:
    """The persona as designer-readable TOML: only fields that differ from the defaults, no extensions."""
    defaults = Persona(name="x")
    out: dict[str, Any] = {}
    for f in fields(Persona):
        value = getattr(persona, f.name)
        if f.name in ("extensions", "lore", "examples", "actions") or value == getattr(defaults, f.name):
            continue
        out["system_prompt" if f.name == "system_prompt_override" else f.name] = value
    if persona.examples:
        out["examples"] = [{"user": e.user, "npc": e.npc} for e in persona.examples]
    if persona.lore:
        out["lore"] = [_entry_table(e) for e in persona.lore]
    if persona.actions:
        out["actions"] = [action_to_dict(a) for a in persona.actions]
    return tomli_w.dumps(out, multiline_strings=True)


def _entry_table(entry: LoreEntry) -> dict[str, Any]:
    fresh = LoreEntry(keys=["x"], text="x")
    table: dict[str, Any] = {"keys": list(entry.keys), "text": entry.text}
    for f in fields(LoreEntry):
        value = getattr(entry, f.name)
        if f.name in ("keys", "text", "extensions") or value is None or value == getattr(fresh, f.name):
            continue
        table[f.name] = value
    return table


def import_files(
    paths: Sequence[Path], out: Path, *, say: Callable[[str], None] = print, overwrite: bool = False
) -> list[Path]:
    """Write one TOML per card (with every lorebook given joined to it), or per lorebook when no card is given."""
    items = [import_file(p) for p in paths]
    cards = [i for i in items if i.persona is not None]
    books = [i for i in items if i.book is not None]
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if cards:
        for item in cards:
            persona = item.persona
            assert persona is not None
            for b in books:
                assert b.book is not None
                persona.lore = persona.lore + list(b.book.entries)
                for key, value in b.book.settings.items():
                    setattr(persona, key, value)
            persona.validate()
            written.append(_write(out, persona.id, persona_toml(persona), overwrite))
            say(f"{item.source} -> {written[-1]}  ({persona.name}, {len(persona.lore)} lore entries)")
            for note in item.notes:
                say(f"  - {note}")
        for b in books:
            say(f"{b.source}: {len(b.book.entries) if b.book else 0} entries joined to every card above")
            for note in b.notes:
                say(f"  - {note}")
    else:
        for b in books:
            assert b.book is not None
            book_id = _slug(b.source.stem) if _slug(b.source.stem) != "persona" else "lorebook"
            persona = Persona(name=b.book.name, id=book_id, lore=list(b.book.entries), **b.book.settings)
            written.append(_write(out, book_id, persona_toml(persona), overwrite))
            say(
                f'{b.source} -> {written[-1]}  ({len(persona.lore)} lore entries; use it with extends = "{book_id}")'
            )
            for note in b.notes:
                say(f"  - {note}")
    for path in written:  # what we wrote must load back: a broken file is our bug, not the designer's
        load_persona(path)
    return written


def _write(out: Path, stem: str, text: str, overwrite: bool) -> Path:
    path = out / f"{stem}.toml"
    if path.exists() and not overwrite:
        raise PersonaFileError(
            [Problem(str(path), None, "file", "exists already (pass --force to replace it)")]
        )
    path.write_text(text, encoding="utf-8")
    return path
