"""The authored dialogue corpus: its item schema, a reader, and a validator that reports `file:line: field: why`.

Layout (docs/corpus.md): `corpus/personas/<id>.toml` are persona files in the designers' format;
`corpus/dialogue/{train,heldout}/<id>.jsonl` hold one persona's items each, one JSON object a line. The folder a file
lies in is its split: held-out personas are never trained on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from npc_sdk.personas.files import load_persona
from npc_sdk.personas.persona import Persona

from ..model.vocabulary import CATEGORIES, TIMES

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
SAMPLE_PERSONAS = (
    CORPUS.parent / "samples" / "personas"
)  # the sample personas are in the corpus without a copy
SPLITS = ("train", "heldout")
KINDS = (
    "scene",  # about what is in view
    "services",  # what the NPC sells or does, prices
    "identity",  # who the NPC is
    "directions",  # where things are
    "lore",  # the world, its history and people
    "smalltalk",  # weather, greetings, feelings
    "request",  # asks for one of the persona's declared actions
    "refusal",  # asks for something the NPC will not do
    "insult",  # hostile line
    "offtopic",  # out of the world (phones, taxes, football)
    "jailbreak",  # tries to make the NPC drop its role
    "unknown",  # the NPC does not know the answer
    "memory",  # refers to an earlier turn of the history
)
MAX_REPLY_WORDS = 35
MAX_HISTORY = 3
TAGS = frozenset(c.name for c in CATEGORIES) | frozenset(TIMES)
WORDS_OF = {c.name: c.words for c in CATEGORIES}
_NARRATION = re.compile(r"[*\[\]()]|^\s*[A-Z][\w' -]{0,30}:\s")


@dataclass(frozen=True)
class Entity:
    tag: str  # what it is ("ferryman")
    name: str = ""  # a proper name ("Old Tom")
    x: float | None = None  # 0 left .. 1 right


@dataclass(frozen=True)
class CorpusItem:
    id: str
    persona: str  # the persona file's id (file stem)
    kind: str
    line: str  # the player's line
    reply: str  # the NPC's written reply
    history: tuple[tuple[str, str], ...] = ()  # earlier (player, npc) turns, oldest first
    in_view: tuple[str, ...] = ()  # scene tags: things, one terrain, a time of day
    entities: tuple[Entity, ...] = ()  # what the game says is there
    split: str = "train"
    where: str = field(default="", compare=False)  # file:line, for messages


class CorpusError(ValueError):
    pass


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9']+", text.lower())


def check_item(data: object, persona: Persona | None, stem: str) -> list[tuple[str, str]]:
    """(field, why) for everything wrong with one item; empty when it is sound."""
    if not isinstance(data, dict):
        return [("item", "is not a JSON object")]
    problems: list[tuple[str, str]] = []
    known = {"id", "persona", "kind", "line", "reply", "history", "in_view", "entities"}
    for key in sorted(set(data) - known):
        problems.append((key, f"is not a field (fields: {', '.join(sorted(known))})"))
    for key in ("id", "persona", "kind", "line", "reply"):
        if not isinstance(data.get(key), str) or not data.get(key, "").strip():
            problems.append((key, "is missing or empty (a non-empty string)"))
    if problems:
        return problems
    if data["persona"] != stem:
        problems.append(("persona", f"is {data['persona']!r} but the file is for {stem!r}"))
    if data["kind"] not in KINDS:
        problems.append(("kind", f"{data['kind']!r} is not one of {', '.join(KINDS)}"))
    reply = data["reply"]
    n_words = len(reply.split())
    if n_words > MAX_REPLY_WORDS:
        problems.append(("reply", f"has {n_words} words, at most {MAX_REPLY_WORDS}"))
    if n_words < 2:
        problems.append(("reply", "is under 2 words"))
    if _NARRATION.search(reply) or "\n" in reply:
        problems.append(
            ("reply", "has stage directions or a speaker label (*, (), [], 'Name:', line breaks)")
        )
    if reply.strip().lower() == data["line"].strip().lower():
        problems.append(("reply", "echoes the player's line"))
    history = data.get("history", [])
    if not isinstance(history, list) or len(history) > MAX_HISTORY:
        problems.append(("history", f"must be a list of at most {MAX_HISTORY} [player, npc] pairs"))
    elif not all(
        isinstance(t, list) and len(t) == 2 and all(isinstance(s, str) and s for s in t) for t in history
    ):
        problems.append(("history", "each turn is a [player line, npc reply] pair of non-empty strings"))
    if data["kind"] == "memory" and not history:
        problems.append(("history", "a memory item needs the earlier turns it refers to"))
    in_view = data.get("in_view", [])
    if not isinstance(in_view, list) or not all(isinstance(t, str) for t in in_view):
        problems.append(("in_view", "must be a list of tag strings"))
        in_view = []
    for tag in in_view:
        if tag not in TAGS:
            problems.append(("in_view", f"{tag!r} is not a scene tag (one of: {', '.join(sorted(TAGS))})"))
    entities = data.get("entities", [])
    if not isinstance(entities, list):
        problems.append(("entities", "must be a list of {tag, name?, x?}"))
        entities = []
    for i, ent in enumerate(entities):
        if not isinstance(ent, dict) or not isinstance(ent.get("tag"), str) or not ent["tag"].strip():
            problems.append((f"entities[{i}]", "needs a non-empty tag"))
        elif set(ent) - {"tag", "name", "x"}:
            problems.append((f"entities[{i}]", "fields are tag, name, x"))
        elif "x" in ent and not (isinstance(ent["x"], int | float) and 0 <= ent["x"] <= 1):
            problems.append((f"entities[{i}].x", "must be a number in [0, 1]"))
    if data["kind"] == "scene" and not in_view and not entities:
        problems.append(("in_view", "a scene item says what is in view (in_view tags and/or entities)"))
    # A reply may only name scene things that are in view: the model must not learn to invent them.
    said = set(_words(reply))
    present = set(in_view) | {e.get("tag", "") for e in entities if isinstance(e, dict)}
    for tag, words in WORDS_OF.items():
        if tag in present or tag in ("stone", "water", "sand", "grass", "snow", "key", "sign", "box", "rock"):
            continue  # everyday words ("a key question", "set in stone") are allowed when not about the scene
        hit = said & set(words)
        if hit and tag not in _words(data["line"]) and not (set(_words(data["line"])) & set(words)):
            problems.append(("reply", f"names {sorted(hit)[0]!r} ({tag}) but it is not in view"))
    if persona is not None and data["kind"] == "identity":
        first = persona.name.split()[0].lower().strip(".,")
        if first not in reply.lower() and data.get("line", "").lower().find("name") >= 0:
            problems.append(("reply", f"asked its name, the reply does not say {persona.name!r}"))
    return problems


def _item(data: dict, split: str, where: str) -> CorpusItem:
    return CorpusItem(
        id=data["id"],
        persona=data["persona"],
        kind=data["kind"],
        line=data["line"].strip(),
        reply=data["reply"].strip(),
        history=tuple((a, b) for a, b in data.get("history", [])),
        in_view=tuple(data.get("in_view", [])),
        entities=tuple(Entity(e["tag"], e.get("name", ""), e.get("x")) for e in data.get("entities", [])),
        split=split,
        where=where,
    )


def validate(root: Path = CORPUS) -> tuple[list[CorpusItem], list[str]]:
    """Every item of the corpus and every problem found, as `file:line: field: why`."""
    items: list[CorpusItem] = []
    problems: list[str] = []
    ids: dict[str, str] = {}
    personas: dict[str, Persona] = {}
    for path in _persona_paths(root):
        try:
            personas[path.stem] = load_persona(path)
        except Exception as exc:  # the persona validator's own message names file and field
            problems.append(f"{path}: persona: {exc}")
    seen_persona_split: dict[str, str] = {}
    for split in SPLITS:
        for path in sorted((root / "dialogue" / split).glob("*.jsonl")):
            stem = path.stem
            if stem not in personas:
                problems.append(f"{path}:1: persona: no corpus/personas/{stem}.toml (nor a sample persona)")
            if stem in seen_persona_split:
                problems.append(
                    f"{path}:1: persona: {stem} is in both {seen_persona_split[stem]} and {split}"
                )
            seen_persona_split[stem] = split
            for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not raw.strip():
                    continue
                where = f"{path}:{n}"
                try:
                    data = json.loads(raw)
                except json.JSONDecodeError as exc:
                    problems.append(f"{where}: item: not JSON ({exc.msg})")
                    continue
                found = check_item(data, personas.get(stem), stem)
                problems += [f"{where}: {fld}: {why}" for fld, why in found]
                if found:
                    continue
                if data["id"] in ids:
                    problems.append(f"{where}: id: {data['id']!r} already used at {ids[data['id']]}")
                    continue
                ids[data["id"]] = where
                items.append(_item(data, split, where))
    return items, problems


def read_corpus(root: Path = CORPUS) -> list[CorpusItem]:
    items, problems = validate(root)
    if problems:
        raise CorpusError(f"{len(problems)} problems in the corpus, first: {problems[0]}")
    return items


def _persona_paths(root: Path) -> list[Path]:
    own = {p.stem: p for p in (root / "personas").glob("*.toml")}
    samples = {p.stem: p for p in SAMPLE_PERSONAS.glob("*.toml") if p.stem != "villager"}
    return sorted({**samples, **own}.values())


def personas_of(root: Path = CORPUS) -> dict[str, Persona]:
    return {p.stem: load_persona(p) for p in _persona_paths(root)}


def iter_summary(items: list[CorpusItem]) -> Iterator[str]:
    by_split: dict[str, int] = {}
    by_kind: dict[str, int] = {}
    for it in items:
        by_split[it.split] = by_split.get(it.split, 0) + 1
        by_kind[it.kind] = by_kind.get(it.kind, 0) + 1
    yield f"{len(items)} items, {len({i.persona for i in items})} personas; " + ", ".join(
        f"{k} {v}" for k, v in sorted(by_split.items())
    )
    yield "kinds: " + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1]))


if __name__ == "__main__":
    import sys

    all_items, found_problems = validate(Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS)
    for p in found_problems:
        print(p)
    for line in iter_summary(all_items):
        print(line)
    sys.exit(1 if found_problems else 0)
