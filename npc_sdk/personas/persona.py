"""Persona: who the NPC is, what the decoder is told, which words it favours or never says, and its lore.

This is the in-memory form; persona files (TOML, Character Card V2 JSON or PNG) load into it
(`npc_sdk.personas.files`). Every check names the field it rejects (``persona.role_words['forge']``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..errors import InvalidInputError
from ..runtime.generation import GenerationConfig
from .actions import Action, action_from_dict, check_actions
from .lore import compile_key, select_lore
from .macros import expand

# Per text field. Real cards carry descriptions of 5,000-8,000 characters; what reaches the decoder is bounded
# in tokens by the prompt (personas/prompt.py trims a persona that does not fit, and says so), not here.
MAX_FIELD_CHARS = 32000
MAX_ROLE_WORD_WEIGHT = 10.0  # logit bonus cap: past ~10 a single word drowns out everything else
MAX_LORE_ENTRIES = 1024  # real World Info files hold a few hundred entries
MAX_KEY_CHARS = 500  # a lore key (a regex key included): bounds the per-turn scan
GENERATION_KEYS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "no_repeat_ngram",
    "no_repeat_history",
    "stop",
    "scene_word_weight",
    "absent_word_weight",
    "candidates",
    "max_sentences",
    "max_clauses",
)
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass
class Example:
    user: str  # what the player says
    npc: str  # how this NPC answers: shows the decoder the voice


LORE_POSITIONS = (  # where an entry is shown; SillyTavern's World Info positions 0-7, in that order
    "before_char",
    "after_char",
    "an_top",
    "an_bottom",
    "depth",
    "em_top",
    "em_bottom",
    "outlet",
)
SELECTIVE_LOGIC = (
    "and_any",
    "not_all",
    "not_any",
    "and_all",
)  # SillyTavern's selectiveLogic 0-3, in that order


@dataclass
class LoreEntry:
    keys: list[str]  # words or phrases; the entry is injected when one appears in recent turns
    text: str  # what the decoder is told then (V3 `@@decorator` lines at its start are read, never shown)
    enabled: bool = True
    order: int = 100  # placement: lower goes first; without `priority`, lower also wins a short budget
    extensions: dict[str, Any] = field(default_factory=dict)  # card fields with no equivalent, kept verbatim
    secondary_keys: list[str] = field(default_factory=list)  # checked with `selective_logic` when not empty
    selective_logic: str = "and_any"  # and_any | not_all | not_any | and_all (over secondary_keys)
    constant: bool = False  # always injected (budget permitting), keys or not
    use_regex: bool = (
        False  # keys are regular expressions (a key without regex syntax still matches as a word)
    )
    case_sensitive: bool = False
    whole_words: bool = True  # keys match whole words (keys in scripts written without spaces match anywhere)
    priority: int | None = None  # when the budget is short, higher priority is kept first
    position: str = "before_char"  # one of LORE_POSITIONS; see docs/personas.md for how each is placed
    depth: int = 4  # for position "depth": how many messages back (0 = last, right before the player's line)
    scan_depth: int | None = (
        None  # earlier turns scanned for this entry's keys (default: persona.lore_scan_turns)
    )
    name: str = ""  # a label for reports ("comment" in cards and World Info)


@dataclass(frozen=True)
class SeedMemory:
    """A memory written into the persona file: known from the first line of every session."""

    text: str
    shared: bool = False  # known by every NPC of the persona's memory_group, not this one only


MAX_SEED_MEMORIES = 200


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
    lore_recursion: int = 0  # extra passes in which injected lore text can trigger more entries (0 = off)
    # earlier exchanges the history window no longer shows, recalled by relevance to the line (runtime/memory.py)
    memory_budget_tokens: int = 200
    # NPCs with the same group share the memories seeded `shared` here and those the game adds to the group
    memory_group: str = ""
    memories: list[SeedMemory] = field(default_factory=list)  # what this NPC knows from the start (memory.py)
    talkativeness: float = 0.5  # 0..1: in a scene, how readily it answers a line that names nobody
    actions: list[Action] = field(
        default_factory=list
    )  # what the NPC can do in the game (personas/actions.py)
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
            _check_lore_entry(entry, f"persona.lore[{i}]")
        for name, top in (
            ("lore_budget_tokens", 2000),
            ("lore_scan_turns", 2000),
            ("lore_recursion", 10),
            ("memory_budget_tokens", 2000),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                raise bad(name, f"must be an integer in [0, {top}], got {value!r}")
        if not isinstance(self.memory_group, str) or (
            self.memory_group and not ID_PATTERN.match(self.memory_group)
        ):
            raise bad("memory_group", "must be 1-64 characters of letters, digits, '_', '.' or '-'")
        if len(self.memories) > MAX_SEED_MEMORIES:
            raise bad("memories", f"{len(self.memories)} memories, over {MAX_SEED_MEMORIES}")
        for i, memory in enumerate(self.memories):
            if (
                not isinstance(memory, SeedMemory)
                or not isinstance(memory.text, str)
                or not memory.text.strip()
            ):
                raise bad(f"memories[{i}]", "each memory needs a non-empty text")
            if len(memory.text) > 500:
                raise bad(f"memories[{i}].text", f"is {len(memory.text)} characters, over 500")
            if memory.shared and not self.memory_group:
                raise bad(f"memories[{i}].shared", "a shared memory needs the persona's memory_group")
        if (
            isinstance(self.talkativeness, bool)
            or not isinstance(self.talkativeness, (int, float))
            or not 0.0 <= self.talkativeness <= 1.0
        ):
            raise bad("talkativeness", f"must be a number in [0, 1], got {self.talkativeness!r}")
        check_actions(self.actions)
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
        values["memories"] = [_seed_memory(m, i) for i, m in enumerate(values.get("memories") or [])]
        raw_actions = values.get("actions") or []
        if not isinstance(raw_actions, list):
            raise InvalidInputError("persona.actions", "must be a list of [[actions]] tables")
        values["actions"] = [action_from_dict(a, f"persona.actions[{i}]") for i, a in enumerate(raw_actions)]
        for key in ("alternate_greetings", "banned_words"):
            values[key] = list(values.get(key) or [])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # ---- what the models read ----------------------------------------------------------------------------
    def for_decoder(self) -> Persona:
        """This persona as the decoder reads it: a card's `<START>` markers and CR line ends taken out. The persona
        itself keeps its text as written.

        Cutting more was tried and read worse: with a card's narrated greeting cut to its spoken words, its opening
        chat lines and `*actions*` taken out, 3 of 32 first replies of four real cards were acceptable against 9 of
        32 as written (docs/personas.md)."""
        return replace(
            self,
            description=_plain(self.description),
            personality=_plain(self.personality),
            scenario=_plain(self.scenario),
            style=_plain(self.style),
            greeting=_plain(self.greeting),
            system_prompt_override=_plain(self.system_prompt_override),
            examples=[Example(_plain(e.user), _plain(e.npc)) for e in self.examples],
        )

    def system_prompt(self) -> str:
        """The system message the decoder sees, built from the persona's fields."""
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
        if self.system_prompt_override:
            # SillyTavern's {{original}} stands for the prompt the override replaces
            base = _ORIGINAL.sub(lambda _m: base, self.system_prompt_override)
        if self.examples:
            lines = [f"Player: {e.user}\n{self.name}: {e.npc}" for e in self.examples]
            base += "\nExample dialogue:\n" + "\n".join(lines)
        return expand(base, self.name)

    def role_text(self) -> str:
        """What the role encoder reads to make v_R."""
        text = " ".join(p for p in (self.name, self.description, self.personality, self.style) if p).strip()
        return expand(text, self.name)  # "{{char}} keeps the gate" is about the NPC, by name

    def turn_context(self, recent_text: Sequence[str], count_tokens, turn_number: int = 0) -> str:
        """Lore triggered by `recent_text` (within the token budget) and post-history instructions.

        `recent_text` is this line first, then earlier messages newest first. Shown to the decoder just before
        the player's line; stored with the turn so the history renders it the same way next time (and the KV
        state stays reusable).
        """
        notes = [expand(t, self.name) for t in select_lore(self, recent_text, count_tokens, turn_number)]
        if self.post_history:
            notes.append(expand(self.post_history.strip(), self.name))
        notes = [n for n in notes if n]
        return "" if not notes else "(" + " ".join(notes) + ")\n"


_START = re.compile(r"<START>", re.IGNORECASE)


def _plain(text: str) -> str:
    """Line ends as `\n` and no `<START>` markers (chat-site scaffolding in imported cards)."""
    if "\r" not in text and "<" not in text:
        return text
    return _START.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).strip()


_ORIGINAL = re.compile(r"\{\{\s*original\s*\}\}", re.IGNORECASE)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text[-1:] in ".!?" else text + "."


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


def _seed_memory(value: Any, i: int) -> SeedMemory:
    """A persona file's memory: plain text, or a table with `text` and `shared`."""
    if isinstance(value, SeedMemory):
        return value
    if isinstance(value, str):
        return SeedMemory(value)
    if (
        not isinstance(value, Mapping)
        or set(value) - {"text", "shared"}
        or not isinstance(value.get("text"), str)
    ):
        raise InvalidInputError(
            f"persona.memories[{i}]", "must be text or a table with `text` (and `shared`)"
        )
    if not isinstance(value.get("shared", False), bool):
        raise InvalidInputError(f"persona.memories[{i}].shared", "must be true or false")
    return SeedMemory(value["text"], bool(value.get("shared", False)))


_LORE_KEYS = {f.name for f in fields(LoreEntry)}
_LORE_TYPES: dict[str, tuple[type, ...]] = {
    "enabled": (bool,),
    "constant": (bool,),
    "use_regex": (bool,),
    "case_sensitive": (bool,),
    "whole_words": (bool,),
    "order": (int,),
    "priority": (int, type(None)),
    "depth": (int,),
    "scan_depth": (int, type(None)),
    "selective_logic": (str,),
    "position": (str,),
    "name": (str,),
    "text": (str,),
    "extensions": (dict,),
}


def _lore(value: Any, i: int) -> LoreEntry:
    if isinstance(value, LoreEntry):
        return value
    where = f"persona.lore[{i}]"
    if not isinstance(value, Mapping):
        raise InvalidInputError(where, "must be a table with `keys` and `text`")
    unknown = sorted(set(value) - _LORE_KEYS)
    if unknown:
        raise InvalidInputError(
            f"{where}.{unknown[0]}",
            f"unknown field (known: {', '.join(sorted(_LORE_KEYS - {'extensions'}))})",
        )
    values = dict(value)
    for key in ("keys", "secondary_keys"):
        words = values.get(key, [])
        if isinstance(words, str):
            words = [words]
        if not isinstance(words, list):
            raise InvalidInputError(f"{where}.{key}", "must be a list of words")
        values[key] = list(words)
    for key, types in _LORE_TYPES.items():
        if key not in values:
            continue
        v = values[key]
        if (isinstance(v, bool) and bool not in types) or not isinstance(v, types):
            kind = " or ".join("nothing" if t is type(None) else t.__name__ for t in types)
            raise InvalidInputError(f"{where}.{key}", f"must be {kind}, got {v!r}")
    values.setdefault("text", "")
    values["extensions"] = dict(values.get("extensions") or {})
    return LoreEntry(**values)


def _check_lore_entry(entry: LoreEntry, where: str) -> None:
    def bad(name: str, why: str) -> InvalidInputError:
        return InvalidInputError(f"{where}.{name}", why)

    for name in ("keys", "secondary_keys"):
        words = getattr(entry, name)
        if not isinstance(words, list) or any(not isinstance(k, str) or not k.strip() for k in words):
            raise bad(name, "must be a list of non-empty words")
        if any(len(k) > MAX_KEY_CHARS for k in words):
            raise bad(name, f"a key is over {MAX_KEY_CHARS} characters")
    # A disabled entry may lack keys or text: imported lorebooks hold such placeholders, kept for export.
    if entry.enabled and not entry.keys and not entry.constant:
        raise bad("keys", "needs at least one non-empty key (or constant = true)")
    if not isinstance(entry.text, str):
        raise bad("text", f"must be text, got {type(entry.text).__name__}")
    if entry.enabled and not entry.text.strip():
        raise bad("text", "is empty")
    if len(entry.text) > MAX_FIELD_CHARS:
        raise bad("text", f"is {len(entry.text)} characters, over {MAX_FIELD_CHARS}")
    for name in ("order", "priority"):  # int32 on the wire
        value = getattr(entry, name)
        if value is not None and not -(2**31) <= value < 2**31:
            raise bad(name, f"must fit in 32 bits, got {value}")
    if entry.selective_logic not in SELECTIVE_LOGIC:
        raise bad(
            "selective_logic", f"must be one of {', '.join(SELECTIVE_LOGIC)}, got {entry.selective_logic!r}"
        )
    if entry.position not in LORE_POSITIONS:
        raise bad("position", f"must be one of {', '.join(LORE_POSITIONS)}, got {entry.position!r}")
    if isinstance(entry.depth, bool) or not isinstance(entry.depth, int) or not 0 <= entry.depth <= 1000:
        raise bad("depth", f"must be an integer in [0, 1000], got {entry.depth!r}")
    if entry.scan_depth is not None and (
        isinstance(entry.scan_depth, bool)
        or not isinstance(entry.scan_depth, int)
        or not 0 <= entry.scan_depth <= 2000
    ):
        raise bad("scan_depth", f"must be an integer in [0, 2000], got {entry.scan_depth!r}")
    for key in entry.keys + entry.secondary_keys:  # `/pattern/flags` keys are regexes whatever use_regex says
        try:
            compile_key(key, entry.use_regex, entry.case_sensitive, entry.whole_words)
        except re.error as exc:
            raise bad("keys", f"{key!r} is not a valid regular expression ({exc})") from exc
