"""Lorebooks to and from lore entries: a card's `character_book` (V2/V3), `lorebook_v3`, SillyTavern World Info.

World Info comes in several historical shapes (2023: `uid,key,keysecondary,comment,content,constant,selective,
order`; 2024-25 add `position`, `depth`, `disable`, `selectiveLogic`, `scanDepth`, ...); missing fields take
SillyTavern's defaults. Each imported entry keeps its original object under `extensions` (`card_entry` or
`world_info_entry`), so a card exports back exactly as it came, with only what was edited changed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .lore import compile_key, parse_decorators
from .persona import LORE_POSITIONS, MAX_KEY_CHARS, MAX_LORE_ENTRIES, SELECTIVE_LOGIC, LoreEntry
from .problems import PersonaFileError, Problem

CARD_ENTRY = "card_entry"
# A card's book without a token_budget gets this rather than a persona's default 200: real entries run to
# 1,000-1,500 characters (~300-400 tokens), and SillyTavern's own default is a share of a large context.
IMPORTED_LORE_BUDGET = 600
WORLD_INFO_ENTRY = "world_info_entry"


@dataclass
class Lorebook:
    name: str
    entries: list[LoreEntry]
    settings: dict[str, int] = field(
        default_factory=dict
    )  # lore_budget_tokens / lore_scan_turns / lore_recursion
    notes: list[str] = field(default_factory=list)  # what was dropped or approximated, for the import report


def _keys(value: Any) -> list[str]:
    if isinstance(value, str):  # some old files hold "a, b, c"
        value = value.split(",")
    if not isinstance(value, list):
        return []
    return [k.strip() for k in value if isinstance(k, str) and k.strip() and len(k.strip()) <= MAX_KEY_CHARS]


def _int(value: Any, default: int | None, low: int = -(2**31), high: int = 2**31 - 1) -> int | None:
    """An integer field as the persona can hold it (clamped: the wire format is int32)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return default
    return max(low, min(high, int(value)))


def _usable_keys(keys: list[str], use_regex: bool, case_sensitive: bool, whole_words: bool) -> list[str]:
    """Keys with a `/regex/` that does not compile replaced by its text (it then matches literally)."""
    out = []
    for k in keys:
        try:
            compile_key(k, use_regex, case_sensitive, whole_words)
            out.append(k)
        except re.error:
            out.append(k.strip("/"))
    return out


def _finish(values: dict[str, Any]) -> LoreEntry:
    """An entry that never fires (no keys, not constant, or no text) is kept, disabled, so it survives export."""
    text = values["text"]
    _, body = parse_decorators(text) if isinstance(text, str) else (None, "")
    if not body.strip() or (not values["keys"] and not values["constant"]):
        values["enabled"] = False
    values["keys"] = _usable_keys(
        values["keys"], values["use_regex"], values["case_sensitive"], values["whole_words"]
    )
    values["secondary_keys"] = _usable_keys(
        values["secondary_keys"], values["use_regex"], values["case_sensitive"], values["whole_words"]
    )
    return LoreEntry(**values)


# ---- card character_book entries (V2, V3) -------------------------------------------------------------------
def entry_from_card(e: Mapping[str, Any]) -> LoreEntry:
    st = e.get("extensions") if isinstance(e.get("extensions"), Mapping) else {}
    position_index = _int(st.get("position"), None)
    if position_index is not None and 0 <= position_index < len(LORE_POSITIONS):
        position = LORE_POSITIONS[position_index]
    else:
        position = "after_char" if e.get("position") == "after_char" else "before_char"
    selective = e.get("selective")
    secondary = _keys(e.get("secondary_keys")) if selective is not False else []
    logic = _int(st.get("selectiveLogic"), 0) or 0
    case = e.get("case_sensitive") if isinstance(e.get("case_sensitive"), bool) else st.get("case_sensitive")
    whole = st.get("match_whole_words")
    order = _int(e.get("insertion_order"), 100)
    return _finish(
        {
            "keys": _keys(e.get("keys")),
            "text": e.get("content") if isinstance(e.get("content"), str) else "",
            "enabled": e.get("enabled") is not False,
            "order": order,
            "extensions": {CARD_ENTRY: dict(e)},
            "secondary_keys": secondary,
            "selective_logic": SELECTIVE_LOGIC[logic] if 0 <= logic < 4 else "and_any",
            "constant": e.get("constant") is True,
            "use_regex": e.get("use_regex") is True,
            "case_sensitive": case is True,
            "whole_words": whole is not False,
            "priority": _int(e.get("priority"), None),
            "position": position,
            "depth": _int(st.get("depth"), 4, 0, 1000),
            "scan_depth": _turns(_int(st.get("scan_depth"), None)),
            "name": str(e.get("comment") or e.get("name") or ""),
        }
    )


def _turns(messages: int | None) -> int | None:
    """SillyTavern counts scan depth in messages; a persona counts turns (a player line and a reply)."""
    return None if messages is None or messages < 0 else min(2000, math.ceil(min(messages, 4000) / 2))


_CARD_FIELDS = {  # LoreEntry field -> how it is written into a card entry (V2 key, or SillyTavern extension)
    "keys": lambda e: {"keys": list(e.keys)},
    "text": lambda e: {"content": e.text},
    "enabled": lambda e: {"enabled": e.enabled},
    "order": lambda e: {"insertion_order": e.order},
    "secondary_keys": lambda e: {
        "secondary_keys": list(e.secondary_keys),
        "selective": bool(e.secondary_keys),
    },
    "constant": lambda e: {"constant": e.constant},
    "use_regex": lambda e: {"use_regex": e.use_regex},
    "case_sensitive": lambda e: {"case_sensitive": e.case_sensitive},
    "priority": lambda e: {"priority": e.priority},
    "position": lambda e: {
        "position": "before_char" if e.position == "before_char" else "after_char",
        "extensions.position": LORE_POSITIONS.index(e.position),
    },
    "name": lambda e: {"comment": e.name},
    "selective_logic": lambda e: {"extensions.selectiveLogic": SELECTIVE_LOGIC.index(e.selective_logic)},
    "whole_words": lambda e: {"extensions.match_whole_words": e.whole_words},
    "depth": lambda e: {"extensions.depth": e.depth},
    "scan_depth": lambda e: {"extensions.scan_depth": None if e.scan_depth is None else 2 * e.scan_depth},
}


def entry_to_card(entry: LoreEntry) -> dict[str, Any]:
    """The card entry: the imported original with only the edited fields rewritten, or a fresh one."""
    original = entry.extensions.get(CARD_ENTRY)
    if isinstance(original, Mapping):
        out = dict(original)
        derived = entry_from_card(original)
        changed = [f for f in _CARD_FIELDS if getattr(entry, f) != getattr(derived, f)]
    else:
        out = {}
        fresh = LoreEntry(keys=["x"], text="x")
        changed = ["keys", "text", "enabled", "order"]
        changed += [f for f in _CARD_FIELDS if f not in changed and getattr(entry, f) != getattr(fresh, f)]
        extra = {k: v for k, v in entry.extensions.items() if k not in (CARD_ENTRY, WORLD_INFO_ENTRY)}
        out.update(extra)  # entries written by an older importer kept card fields here directly
    for name in changed:
        for key, value in _CARD_FIELDS[name](entry).items():
            if key.startswith("extensions."):
                ext = dict(out.get("extensions") or {})
                ext[key.removeprefix("extensions.")] = value
                out["extensions"] = ext
            else:
                out[key] = value
    return out


# ---- SillyTavern World Info entries -------------------------------------------------------------------------
def entry_from_world_info(e: Mapping[str, Any]) -> LoreEntry:
    position_index = _int(e.get("position"), 0)
    position = (
        LORE_POSITIONS[position_index] if 0 <= (position_index or 0) < len(LORE_POSITIONS) else "before_char"
    )
    logic = _int(e.get("selectiveLogic"), 0) or 0
    order = _int(e.get("order"), 100)
    selective = e.get("selective")
    return _finish(
        {
            "keys": _keys(e.get("key", e.get("keys"))),
            "text": e.get("content") if isinstance(e.get("content"), str) else "",
            "enabled": e.get("disable") is not True and e.get("enabled") is not False,
            "order": order if order is not None else 100,
            "extensions": {WORLD_INFO_ENTRY: dict(e)},
            "secondary_keys": _keys(e.get("keysecondary", e.get("secondary_keys")))
            if selective is not False
            else [],
            "selective_logic": SELECTIVE_LOGIC[logic] if 0 <= logic < 4 else "and_any",
            "constant": e.get("constant") is True,
            "use_regex": e.get("use_regex") is True,
            "case_sensitive": e.get("caseSensitive") is True,
            "whole_words": e.get("matchWholeWords") is not False,
            # In World Info a higher order is both placed later and kept first when the budget is short.
            "priority": order,
            "position": position,
            "depth": _int(e.get("depth"), 4, 0, 1000),
            "scan_depth": _turns(_int(e.get("scanDepth"), None)),
            "name": str(e.get("comment") or ""),
        }
    )


# ---- whole books ---------------------------------------------------------------------------------------------
def book_settings(book: Mapping[str, Any]) -> dict[str, int]:
    """A card book's scan_depth / token_budget / recursive_scanning as persona settings."""
    budget = _int(book.get("token_budget"), None)
    out = {
        "lore_budget_tokens": min(2000, budget) if budget is not None and budget > 0 else IMPORTED_LORE_BUDGET
    }
    depth = _turns(_int(book.get("scan_depth"), None))
    if depth is not None:
        out["lore_scan_turns"] = depth
    if book.get("recursive_scanning") is True:
        out["lore_recursion"] = 3
    return out


def _entry_list(entries: Any, where: str, source: str) -> list[tuple[str, Mapping[str, Any]]]:
    if isinstance(entries, Mapping):  # World Info: {"0": {...}, "1": {...}}
        items = list(entries.items())
    elif isinstance(entries, list):
        items = [(str(i), e) for i, e in enumerate(entries)]
    else:
        raise PersonaFileError([Problem(source, None, where, "must be a list or an object of entries")])
    if len(items) > MAX_LORE_ENTRIES:
        raise PersonaFileError(
            [Problem(source, None, where, f"{len(items)} entries, over {MAX_LORE_ENTRIES}")]
        )
    for key, e in items:
        if not isinstance(e, Mapping):
            raise PersonaFileError([Problem(source, None, f"{where}[{key}]", "must be an object")])
    return items


def read_lorebook(obj: Mapping[str, Any], source: str, default_name: str = "lorebook") -> Lorebook:
    """A standalone lorebook: `{spec: lorebook_v3, data}`, a V2 `character_book`, or World Info."""
    if obj.get("spec") == "lorebook_v3":
        data = obj.get("data")
        if not isinstance(data, Mapping):
            raise PersonaFileError([Problem(source, None, "data", "a lorebook_v3 needs a 'data' object")])
        obj = data
    items = _entry_list(obj.get("entries"), "entries", source)
    card_shape = any("keys" in e or "insertion_order" in e for _, e in items) and not any(
        "key" in e or "uid" in e for _, e in items
    )
    entries = [entry_from_card(e) if card_shape else entry_from_world_info(e) for _, e in items]
    name = obj.get("name") if isinstance(obj.get("name"), str) and obj.get("name") else default_name
    book = Lorebook(
        name, entries, book_settings(obj) if card_shape else {"lore_budget_tokens": IMPORTED_LORE_BUDGET}
    )
    book.notes = describe_entries(entries)
    return book


def describe_entries(entries: list[LoreEntry]) -> list[str]:
    """What an import approximates or drops, in words, for `npc-sdk persona import`."""
    notes = []
    never = [e.name or f"#{i}" for i, e in enumerate(entries) if not e.enabled]
    if never:
        notes.append(
            f"{len(never)} entries disabled or never firing (no keys, no text, or disabled): {_few(never)}"
        )
    positions: dict[str, int] = {}
    for e in entries:
        if e.enabled and e.position not in ("before_char", "after_char"):
            key = f"{e.position} {e.depth}" if e.position == "depth" else e.position
            positions[key] = positions.get(key, 0) + 1
    if positions:
        listed = ", ".join(f"{k} x{n}" for k, n in sorted(positions.items()))
        notes.append(f"positions shown in the turn's note instead of their place in the chat: {listed}")
    ignored: dict[str, int] = {}
    for e in entries:
        for name in parse_decorators(e.text)[0].ignored:
            ignored[name] = ignored.get(name, 0) + 1
    if ignored:
        notes.append(
            "decorators stripped, not implemented: " + ", ".join(f"@@{k} x{n}" for k, n in ignored.items())
        )
    unmodelled = set()
    for e in entries:
        original = e.extensions.get(WORLD_INFO_ENTRY) or {}
        if original.get("useProbability") and _int(original.get("probability"), 100) not in (None, 100):
            unmodelled.add("probability below 100 (entries always fire)")
        for key in ("sticky", "cooldown", "delay"):
            if _int(original.get(key), 0):
                unmodelled.add(f"{key} (not modelled)")
        if original.get("group"):
            unmodelled.add("inclusion groups (not modelled)")
    notes += sorted(unmodelled)
    return notes


def _few(names: list[str]) -> str:
    names = [" ".join(n.split())[:40] for n in names]
    return ", ".join(names[:5]) + (f", ... ({len(names) - 5} more)" if len(names) > 5 else "")
