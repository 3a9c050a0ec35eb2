"""Persona: who the NPC is, what the decoder is told, which words it favours or never says, and its lore.

This is the in-memory form; persona files (TOML, Character Card V2 JSON or PNG) load into it
(`npc_sdk.personas.files`). Every check names the field it rejects (``persona.role_words['forge']``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import InvalidInputError
from ..runtime.generation import GenerationConfig

MAX_FIELD_CHARS = 4000  # per text field; keeps the system prompt well inside the context window
MAX_ROLE_WORD_WEIGHT = 10.0  # logit bonus cap: past ~10 a single word drowns out everything else
MAX_LORE_ENTRIES = 256
GENERATION_KEYS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "no_repeat_ngram",
    "stop",
    "scene_word_weight",
    "absent_word_weight",
)
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass
class Example:
    user: str  # what the player says
    npc: str  # how this NPC answers: shows the decoder the voice


@dataclass
class LoreEntry:
    keys: list[str]  # words or phrases; the entry is injected when one appears in recent turns
    text: str  # what the decoder is told then
    enabled: bool = True
    order: int = 100  # lower goes first, and wins when the token budget is short
    extensions: dict[str, Any] = field(default_factory=dict)  # card fields with no equivalent, kept verbatim


@dataclass
class Persona:
    name: str  # what the NPC is called; required
    description: str = ""  # who they are, in the designer's words
    personality: str = ""  # temperament, in a few adjectives or a sentence
    scenario: str = ""  # where and when the conversation happens
    greeting: str = ""  # the NPC's first line; shown to the decoder as its first turn
    style: str = ""  # speaking-style notes ("short sentences, calls everyone 'lad'")
    role_words: dict[str, float] = field(default_factory=dict)  # word -> logit bonus (role-word constraint)
    id: str = ""  # stable handle for persona files and the server's persona_id
    alternate_greetings: list[str] = field(default_factory=list)
    system_prompt_override: str = ""  # replaces the generated system message when set (card "system_prompt")
    post_history: str = ""  # told to the decoder with every player line (card "post_history_instructions")
    examples: list[Example] = field(default_factory=list)  # example dialogue shown in the system message
    banned_words: list[str] = field(default_factory=list)  # never emitted, in any case or token split
    lore: list[LoreEntry] = field(default_factory=list)
    lore_budget_tokens: int = 200  # lore text injected per turn at most
    lore_scan_turns: int = 2  # how many earlier turns (besides this line) are scanned for lore keys
    generation: dict[str, Any] = field(default_factory=dict)  # defaults for GenerationConfig fields
    extensions: dict[str, Any] = field(
        default_factory=dict
    )  # imported fields with no equivalent, kept verbatim

    def __post_init__(self) -> None:
        self.validate()

    # ---- checks ------------------------------------------------------------------------------------------
    def validate(self) -> None:
        def bad(name: str, why: str) -> InvalidInputError:
            return InvalidInputError(f"persona.{name}", why)

        if not isinstance(self.name, str) or not self.name.strip():
            raise bad("name", "a persona needs a non-empty name")
        if self.id and (not isinstance(self.id, str) or not ID_PATTERN.match(self.id)):
            raise bad("id", "must be 1-64 characters of letters, digits, '_', '.' or '-'")
        for key in (
            "name",
            "description",
            "personality",
            "scenario",
            "greeting",
            "style",
            "system_prompt_override",
            "post_history",
        ):
            value = getattr(self, key)
            if not isinstance(value, str):
                raise bad(key, f"must be text, got {type(value).__name__}")
            if len(value) > MAX_FIELD_CHARS:
                raise bad(key, f"is {len(value)} characters, over {MAX_FIELD_CHARS}")
        if not isinstance(self.role_words, Mapping):
            raise bad("role_words", "must be a table of word = weight")
        for word, weight in self.role_words.items():
            if not isinstance(word, str) or not word.strip():
                raise bad("role_words", "role words must be non-empty text")
            if (
                isinstance(weight, bool)
                or not isinstance(weight, (int, float))
                or not (-MAX_ROLE_WORD_WEIGHT <= weight <= MAX_ROLE_WORD_WEIGHT)
            ):
                raise bad(
                    f"role_words[{word!r}]",
                    f"weight must be a number in [-{MAX_ROLE_WORD_WEIGHT}, {MAX_ROLE_WORD_WEIGHT}], got {weight!r}",
                )
        _check_text_list(self.alternate_greetings, "alternate_greetings")
        _check_text_list(self.banned_words, "banned_words")
        for i, word in enumerate(self.banned_words):
            if not re.search(r"\w", word):
                raise bad(f"banned_words[{i}]", f"{word!r} has no letters to ban")
        for i, ex in enumerate(self.examples):
            if not isinstance(ex, Example) or not ex.user.strip() or not ex.npc.strip():
                raise bad(f"examples[{i}]", "each example needs a non-empty user line and npc line")
        if len(self.lore) > MAX_LORE_ENTRIES:
            raise bad("lore", f"{len(self.lore)} entries, over {MAX_LORE_ENTRIES}")
        for i, entry in enumerate(self.lore):
            if not isinstance(entry, LoreEntry):
                raise bad(f"lore[{i}]", "must be a lore entry")
            if not entry.keys or any(not isinstance(k, str) or not k.strip() for k in entry.keys):
                raise bad(f"lore[{i}].keys", "needs at least one non-empty key")
            if not isinstance(entry.text, str) or not entry.text.strip():
                raise bad(f"lore[{i}].text", "is empty")
            if len(entry.text) > MAX_FIELD_CHARS:
                raise bad(f"lore[{i}].text", f"is {len(entry.text)} characters, over {MAX_FIELD_CHARS}")
        for name in ("lore_budget_tokens", "lore_scan_turns"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2000:
                raise bad(name, f"must be an integer in [0, 2000], got {value!r}")
        unknown = sorted(set(self.generation) - set(GENERATION_KEYS))
        if unknown:
            raise bad(f"generation.{unknown[0]}", f"unknown setting (known: {', '.join(GENERATION_KEYS)})")
        try:
            self.generation_defaults()
        except InvalidInputError as exc:
            raise InvalidInputError("persona." + exc.field, exc.message) from exc

    def generation_defaults(self, base: GenerationConfig | None = None) -> GenerationConfig:
        """`base` with this persona's generation settings applied (a request's own values apply on top)."""
        base = base or GenerationConfig()
        values = dict(self.generation)
        if "stop" in values:
            values["stop"] = tuple(values["stop"])
        return base.with_(**values) if values else base

    # ---- (de)serialisation -------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Persona:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(
                f"persona.{unknown[0]}", f"unknown field (known: {', '.join(sorted(known))})"
            )
        if "name" not in data:
            raise InvalidInputError("persona.name", "a persona needs a non-empty name")
        values = dict(data)
        values["role_words"] = dict(values.get("role_words") or {})
        values["examples"] = [_example(e, i) for i, e in enumerate(values.get("examples") or [])]
        values["lore"] = [_lore(e, i) for i, e in enumerate(values.get("lore") or [])]
        for key in ("alternate_greetings", "banned_words"):
            values[key] = list(values.get(key) or [])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # ---- what the models read ----------------------------------------------------------------------------
    def system_prompt(self) -> str:
        """The system message the decoder sees, built from the persona's fields."""
        if self.system_prompt_override:
            base = self.system_prompt_override.replace("{{char}}", self.name)
        else:
            parts = [f"You are {self.name}."]
            if self.description:
                parts.append(_sentence(self.description))
            if self.personality:
                parts.append(_sentence(f"Personality: {self.personality.strip()}"))
            if self.scenario:
                parts.append(_sentence(f"Scenario: {self.scenario.strip()}"))
            if self.style:
                parts.append(_sentence(f"Speaking style: {self.style.strip()}"))
            parts.append("Stay in character. Reply in one or two sentences.")
            base = " ".join(parts)
        if self.examples:
            lines = [f"Player: {e.user}\n{self.name}: {e.npc}" for e in self.examples]
            base += "\nExample dialogue:\n" + "\n".join(lines)
        return base

    def role_text(self) -> str:
        """What the role encoder reads to make v_R."""
        return " ".join(p for p in (self.name, self.description, self.personality, self.style) if p).strip()

    def turn_context(self, recent_text: Sequence[str], count_tokens) -> str:
        """Lore triggered by `recent_text` (within the token budget) and post-history instructions.

        Shown to the decoder just before the player's line; stored with the turn so the history renders it
        the same way next time (and the KV state stays reusable).
        """
        haystack = " ".join(recent_text).lower()
        notes: list[str] = []
        used = 0
        for entry in sorted((e for e in self.lore if e.enabled), key=lambda e: e.order):
            if not any(_mentions(haystack, key) for key in entry.keys):
                continue
            cost = count_tokens(entry.text)
            if used + cost > self.lore_budget_tokens:
                continue
            used += cost
            notes.append(entry.text.strip())
        if self.post_history:
            notes.append(self.post_history.strip())
        return "" if not notes else "(" + " ".join(notes) + ")\n"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text[-1:] in ".!?" else text + "."


def _mentions(haystack: str, key: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(key.strip().lower()) + r"(?!\w)", haystack) is not None


def _check_text_list(values: Any, name: str) -> None:
    if not isinstance(values, list):
        raise InvalidInputError(f"persona.{name}", "must be a list of text")
    for i, v in enumerate(values):
        if not isinstance(v, str) or not v.strip():
            raise InvalidInputError(f"persona.{name}[{i}]", "must be non-empty text")


def _example(value: Any, i: int) -> Example:
    if isinstance(value, Example):
        return value
    if not isinstance(value, Mapping) or set(value) - {"user", "npc"}:
        raise InvalidInputError(f"persona.examples[{i}]", "must be a table with `user` and `npc` lines")
    return Example(str(value.get("user", "")), str(value.get("npc", "")))


def _lore(value: Any, i: int) -> LoreEntry:
    if isinstance(value, LoreEntry):
        return value
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"persona.lore[{i}]", "must be a table with `keys` and `text`")
    unknown = sorted(set(value) - {"keys", "text", "enabled", "order", "extensions"})
    if unknown:
        raise InvalidInputError(
            f"persona.lore[{i}].{unknown[0]}", "unknown field (known: keys, text, enabled, order)"
        )
    keys = value.get("keys", [])
    if isinstance(keys, str):
        keys = [keys]
    if not isinstance(keys, list):
        raise InvalidInputError(f"persona.lore[{i}].keys", "must be a list of words")
    enabled = value.get("enabled", True)
    order = value.get("order", 100)
    if not isinstance(enabled, bool):
        raise InvalidInputError(f"persona.lore[{i}].enabled", "must be true or false")
    if isinstance(order, bool) or not isinstance(order, int):
        raise InvalidInputError(f"persona.lore[{i}].order", "must be an integer")
    return LoreEntry(list(keys), value.get("text", ""), enabled, order, dict(value.get("extensions") or {}))
