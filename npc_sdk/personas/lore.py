"""Which lore entries a turn injects: keys, secondary keys, constants, regex keys, V3 decorators, budget, order.

The semantics follow SillyTavern's World Info and the Character Card V3 lorebook, within what a turn note can
hold (docs/personas.md, "Lore"): every injected entry is shown in this turn's note, just before the player's
line, because history the decoder has already read is never re-rendered (its KV state is reused).

Scanning is built once per persona (`LoreIndex`) so a 251-entry World Info costs well under a millisecond a
turn: plain keys are looked up as word n-grams in a set, keys in scripts written without spaces (CJK) as
substrings, and only regex keys run a regular expression.
"""

from __future__ import annotations

import re
import unicodedata
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .persona import LoreEntry, Persona

# V3 decorators read here; every other `@@name` line (and every `@@@` fallback line) is stripped unread.
IMPLEMENTED_DECORATORS = (
    "activate",
    "dont_activate",
    "depth",
    "position",
    "scan_depth",
    "additional_keys",
    "exclude_keys",
    "activate_only_after",
    "activate_only_every",
)
_V3_POSITIONS = {"before_desc": "before_char", "after_desc": "after_char"}  # other V3 values: after_char
_PLACEMENT = {"before_char": 0, "em_top": 1, "em_bottom": 2, "after_char": 3, "an_top": 4, "an_bottom": 5}
_REGEX_SYNTAX = re.compile(r"[\[\]()*+?{}|^$\\]")
_SIMPLE_KEY = re.compile(r"\w+(?:[\s'’.,-]+\w+)*")
_WORD = re.compile(r"\w+")
MAX_NGRAM = 8  # keys of more words than this are matched with a regular expression


@dataclass(frozen=True)
class LoreHit:
    """A lore entry injected this turn, and what fired it (ChatRequest.explain)."""

    index: int  # its place in the persona's lore list
    name: str  # its label ("" when it has none)
    keys: tuple[str, ...]  # the keys found in the scanned text (secondary keys too); () when always on
    why: str  # "keys" | "constant" | "recursion" (a key found only in other injected lore)
    text: str  # what was injected (decorators stripped)


@dataclass(frozen=True)
class Decorators:
    activate: bool = False
    dont_activate: bool = False
    position: str | None = None
    depth: int | None = None
    scan_depth: int | None = None
    additional_keys: tuple[str, ...] = ()
    exclude_keys: tuple[str, ...] = ()
    only_after: int | None = None
    only_every: int | None = None
    ignored: tuple[str, ...] = ()  # decorator names read but not implemented (stripped all the same)


@lru_cache(maxsize=4096)
def parse_decorators(text: str) -> tuple[Decorators, str]:
    """(decorators, the text without them): `@@name value` lines at the start of an entry's content."""
    lines = text.split("\n")
    values: dict[str, object] = {}
    ignored: list[str] = []
    n = 0
    while n < len(lines) and lines[n].lstrip().startswith("@@"):
        line = lines[n].strip()
        n += 1
        if line.startswith("@@@"):  # the fallback for the decorator before it: we never need it
            continue
        name, _, arg = line[2:].partition(" ")
        arg = arg.strip()
        if name == "activate":
            values["activate"] = True
        elif name == "dont_activate":
            values["dont_activate"] = True
        elif name in ("depth", "scan_depth", "activate_only_after", "activate_only_every") and arg.isdigit():
            key = {"activate_only_after": "only_after", "activate_only_every": "only_every"}.get(name, name)
            values[key] = int(arg)
        elif name == "position":
            values["position"] = _V3_POSITIONS.get(arg, "after_char")
        elif name in ("additional_keys", "exclude_keys"):
            values[name] = tuple(k.strip() for k in arg.split(",") if k.strip())
        else:
            ignored.append(name)
    if not n:
        return Decorators(), text
    body = "\n".join(lines[n:])
    return Decorators(**values, ignored=tuple(ignored)), body  # type: ignore[arg-type]


def _spaceless_script(text: str) -> bool:
    """True when `text` has characters of a script written without spaces between words (CJK, Thai, ...)."""
    for ch in text:
        if ord(ch) < 0x0E00:
            continue
        name = unicodedata.name(ch, "")
        if name.startswith(
            ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "THAI", "LAO", "KHMER", "MYANMAR", "TIBETAN")
        ):
            return True
    return False


def compile_key(key: str, use_regex: bool, case_sensitive: bool, whole_words: bool) -> re.Pattern[str] | None:
    """The regex a key needs, or None when it is a plain key (matched by `_KeyMatcher` without one).

    `/pattern/flags` is always a regex (SillyTavern's syntax). With `use_regex`, a key with regex syntax is
    a regex too, but a plain word stays a plain word: SillyTavern writes `use_regex: true` on every entry of
    its V3 exports, plain words included. Raises re.error for a `/.../` key that does not compile.
    """
    key = key.strip()
    m = re.fullmatch(r"/(.+)/([a-z]*)", key, re.S)
    if m:
        flags = re.IGNORECASE if "i" in m[2] else 0
        flags |= re.S if "s" in m[2] else 0
        flags |= re.M if "m" in m[2] else 0
        return re.compile(m[1], flags)
    if use_regex and _REGEX_SYNTAX.search(key):
        try:
            return re.compile(key, 0 if case_sensitive else re.IGNORECASE)
        except re.error:
            pass  # not meant as a regex after all ("C++"): a plain key
    if _spaceless_script(key) or not whole_words:
        return None
    if _SIMPLE_KEY.fullmatch(key) and len(_WORD.findall(key)) <= MAX_NGRAM:
        return None
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.compile(r"(?<!\w)" + re.escape(key) + r"(?!\w)", flags)


@dataclass
class _Text:
    """One haystack (the messages an entry may scan), with its word n-grams built on first use."""

    raw: str
    lowered: str = ""
    _grams: dict[bool, set[tuple[str, ...]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lowered = self.raw.lower()

    def grams(self, case_sensitive: bool) -> set[tuple[str, ...]]:
        if case_sensitive not in self._grams:
            words = _WORD.findall(self.raw if case_sensitive else self.lowered)
            self._grams[case_sensitive] = {
                tuple(words[i : i + n]) for n in range(1, MAX_NGRAM + 1) for i in range(len(words) - n + 1)
            }
        return self._grams[case_sensitive]


class _KeyMatcher:
    def __init__(self, key: str, use_regex: bool, case_sensitive: bool, whole_words: bool) -> None:
        self.key = key.strip()  # as written: what the studio shows as the key that fired
        self.case_sensitive = case_sensitive
        try:
            self.pattern = compile_key(key, use_regex, case_sensitive, whole_words)
        except re.error:
            self.pattern = None  # a broken `/.../` key: matched as the literal text it is
        stripped = key.strip()
        self.text = stripped if case_sensitive else stripped.lower()
        self.substring = self.pattern is None and (_spaceless_script(stripped) or not whole_words)
        self.words = tuple(_WORD.findall(self.text))

    def __call__(self, hay: _Text) -> bool:
        if self.pattern is not None:
            return self.pattern.search(hay.raw) is not None
        if self.substring:
            return self.text in (hay.raw if self.case_sensitive else hay.lowered)
        return bool(self.words) and self.words in hay.grams(self.case_sensitive)


@dataclass
class _Prepared:
    entry: LoreEntry
    index: int
    decorators: Decorators
    body: str
    keys: list[_KeyMatcher]
    secondary: list[_KeyMatcher]
    excluded: list[_KeyMatcher]
    position: str
    depth: int
    scan_depth: int | None

    def placement(self) -> tuple[int, int, int, int]:
        if self.position == "depth":
            return (6, -self.depth, self.entry.order, self.index)  # deeper first: nearest the line comes last
        return (_PLACEMENT.get(self.position, 3), 0, self.entry.order, self.index)

    def budget_rank(self) -> tuple[int, int, int, int, int]:
        p = self.entry.priority
        return (0 if self.always else 1, 0 if p is not None else 1, -(p or 0), self.entry.order, self.index)

    @property
    def always(self) -> bool:
        return self.entry.constant or self.decorators.activate


class LoreIndex:
    """A persona's enabled lore, prepared for scanning."""

    def __init__(self, entries: Sequence[LoreEntry], scan_turns: int) -> None:
        self.entries: list[_Prepared] = []
        self.scan_turns = scan_turns
        self._tokens: dict[str, int] = {}
        for i, e in enumerate(entries):
            if not e.enabled or e.position == "outlet":  # an outlet is only shown through a macro we lack
                continue
            deco, body = parse_decorators(e.text)
            if deco.dont_activate or not body.strip():
                continue

            def matchers(keys: Sequence[str], e: LoreEntry = e) -> list[_KeyMatcher]:
                return [
                    _KeyMatcher(k, e.use_regex, e.case_sensitive, e.whole_words) for k in keys if k.strip()
                ]

            self.entries.append(
                _Prepared(
                    entry=e,
                    index=i,
                    decorators=deco,
                    body=body.strip(),
                    keys=matchers([*e.keys, *deco.additional_keys]),
                    secondary=matchers(e.secondary_keys),
                    excluded=matchers(deco.exclude_keys),
                    position="depth" if deco.depth is not None else (deco.position or e.position),
                    depth=deco.depth if deco.depth is not None else e.depth,
                    scan_depth=deco.scan_depth if deco.scan_depth is not None else e.scan_depth,
                )
            )
        self.max_scan = max([scan_turns, *(p.scan_depth or 0 for p in self.entries)])

    def _fires(self, p: _Prepared, hay: _Text, turn_number: int) -> bool:
        d = p.decorators
        if d.only_after is not None and turn_number < d.only_after:
            return False
        if d.only_every and turn_number % d.only_every:
            return False
        if p.always:
            return True
        if not any(k(hay) for k in p.keys):
            return False
        if any(k(hay) for k in p.excluded):
            return False
        if p.secondary:
            hits = [k(hay) for k in p.secondary]
            logic = p.entry.selective_logic
            if logic == "and_any" and not any(hits):
                return False
            if logic == "and_all" and not all(hits):
                return False
            if logic == "not_any" and any(hits):
                return False
            if logic == "not_all" and all(hits):
                return False
        return True

    def select(
        self,
        messages: Sequence[str],
        count_tokens: Callable[[str], int],
        budget: int,
        recursion: int = 0,
        turn_number: int = 0,
    ) -> list[_Prepared]:
        """Entries injected this turn, in placement order. `messages`: this line, then older ones, newest first."""
        return [p for p, _, _ in self._chosen(messages, count_tokens, budget, recursion, turn_number)]

    def explain(
        self,
        messages: Sequence[str],
        count_tokens: Callable[[str], int],
        budget: int,
        recursion: int = 0,
        turn_number: int = 0,
    ) -> list[LoreHit]:
        """The entries `select` injects, each with what fired it (the studio's "why this reply")."""
        hits = []
        for p, recursion_pass, hay in self._chosen(messages, count_tokens, budget, recursion, turn_number):
            keys = tuple(k.key for k in (*p.keys, *p.secondary) if k(hay)) if not p.always else ()
            why = "constant" if p.always else "recursion" if recursion_pass else "keys"
            hits.append(LoreHit(p.index, p.entry.name, keys, why, p.body))
        return hits

    def _chosen(
        self,
        messages: Sequence[str],
        count_tokens: Callable[[str], int],
        budget: int,
        recursion: int,
        turn_number: int,
    ) -> list[tuple[_Prepared, int, _Text]]:
        """(entry, the recursion pass it fired in, the text it was matched against), in placement order."""
        hays: dict[
            tuple[int, str], _Text
        ] = {}  # one per scan depth and recursion pass: its n-grams built once

        def hay_for(scan_turns: int, extra: str) -> _Text:
            key = (scan_turns, extra)
            if key not in hays:
                text = "\n".join(messages[: 1 + 2 * scan_turns])
                hays[key] = _Text(text + "\n" + extra if extra else text)
            return hays[key]

        def hay_of(p: _Prepared, extra: str) -> _Text:
            return hay_for(self.scan_turns if p.scan_depth is None else p.scan_depth, extra)

        chosen: list[tuple[_Prepared, int, _Text]] = []
        taken: set[int] = set()
        used = 0
        extra = ""
        for recursion_pass in range(1 + recursion):
            fired = [
                p
                for p in self.entries
                if p.index not in taken and self._fires(p, hay_of(p, extra), turn_number)
            ]
            added = []
            for p in sorted(fired, key=_Prepared.budget_rank):
                taken.add(p.index)
                cost = self._tokens.get(p.body)
                if cost is None:
                    cost = self._tokens[p.body] = count_tokens(p.body)
                if used + cost > budget:
                    continue
                used += cost
                added.append((p, recursion_pass, hay_of(p, extra)))
            if not added:
                break
            chosen += added
            extra = "\n".join(p.body for p, _, _ in chosen)
        return sorted(chosen, key=lambda c: c[0].placement())


class _IndexCache:
    """Each live persona's LoreIndex, keyed by identity and dropped with the persona.

    Not a WeakKeyDictionary: a Persona is a mutable dataclass that compares by value, so it has no hash.
    """

    def __init__(self) -> None:
        # id(persona) -> (a weak reference to it, (scan turns, ids of its lore entries), the index built from them)
        self._entries: dict[int, tuple[weakref.ref[Persona], tuple[int, tuple[int, ...]], LoreIndex]] = {}

    def get(self, persona: Persona) -> LoreIndex:
        signature = (persona.lore_scan_turns, tuple(id(e) for e in persona.lore))
        entry = self._entries.get(id(persona))
        if entry is not None and entry[0]() is persona and entry[1] == signature:
            return entry[2]
        index = LoreIndex(persona.lore, persona.lore_scan_turns)
        self._entries[id(persona)] = (weakref.ref(persona, self._dropper(id(persona))), signature, index)
        return index

    def _dropper(self, key: int) -> Callable[[weakref.ref[Persona]], None]:
        def drop(ref: weakref.ref[Persona]) -> None:
            entry = self._entries.get(key)
            if entry is not None and entry[0] is ref:  # not a newer persona that reuses the id
                self._entries.pop(key, None)

        return drop


_INDEXES = _IndexCache()


def lore_index(persona: Persona) -> LoreIndex:
    """The persona's LoreIndex, built on first use and rebuilt when its lore list changes."""
    return _INDEXES.get(persona)


def select_lore(
    persona: Persona, messages: Sequence[str], count_tokens: Callable[[str], int], turn_number: int = 0
) -> list[str]:
    """The lore texts (decorators stripped) this turn injects, in the order they are shown."""
    index = lore_index(persona)
    chosen = index.select(
        messages, count_tokens, persona.lore_budget_tokens, persona.lore_recursion, turn_number
    )
    return [p.body for p in chosen]


def explain_lore(
    persona: Persona, messages: Sequence[str], count_tokens: Callable[[str], int], turn_number: int = 0
) -> list[LoreHit]:
    """What `select_lore` injects for the same arguments, each entry with the keys that fired it."""
    return lore_index(persona).explain(
        messages, count_tokens, persona.lore_budget_tokens, persona.lore_recursion, turn_number
    )
