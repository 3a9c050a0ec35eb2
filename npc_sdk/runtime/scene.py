"""What the NPC knows is on screen this turn: tags the image head saw, entities the game says are there, merged.

Two sources, one list:
  * seen: the grounding head's tags whose score passes their calibrated threshold (model folder manifest);
  * game: `ChatRequest.scene` entities the engine knows from its scene graph (a tag, optionally a proper name
    such as "Old Tom the ferryman", a screen position, a distance).
A tag both sources give appears once, with the game's name and position and the head's score. The merged facts
reach the decoder twice, because a 135M decoder needs both the facts and the push (measured from outside the
project: with the true labels, a scene-word bias alone grounds 0.12 of replies, a note alone 0.08, both 0.73):

  note   one line before the player's line in this turn's user block, e.g.
         "(In view: Old Tom the ferryman on the left, 2 slimes, a gem; grass, dusk.)";
  bias   the lexicon words of present things get +`scene_word_weight` (whole words, word_bias.py), and the words
         of things the head is sure are absent (score below `ABSENT_SCORE` and not given by the game) get
         -`absent_word_weight`, so "a dragon" is not invented on an empty meadow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import InvalidInputError
from .events import SeenTag
from .generation import GenerationConfig

MAX_ENTITIES = 32
MAX_TAG_CHARS = 64
ABSENT_SCORE = 0.05  # below this the head is taken to be sure a thing is not there
NOTE_ITEMS = 8  # things named in the note at most, game entities first, then by score


@dataclass(frozen=True)
class TagSpec:
    """One tag of the model's vocabulary (from the manifest)."""

    name: str
    words: tuple[str, ...]  # what counts as naming it; what the scene bias pushes
    kind: str = "thing"  # thing | terrain | time
    threshold: float = 0.5  # the head's score from which the tag counts as seen


@dataclass(frozen=True)
class SceneEntity:
    """Something the game says is in view."""

    tag: str  # what it is, a word the NPC may say ("slime", "ferryman")
    name: str = ""  # a proper name, if it has one ("Old Tom the ferryman")
    x: float | None = None  # screen position: 0 left .. 1 right
    y: float | None = None  # 0 top .. 1 bottom
    distance: float | None = None  # in metres (the game's units), if known

    def validate(self, index: int) -> SceneEntity:
        where = f"scene[{index}]"
        tag = self.tag.strip() if isinstance(self.tag, str) else ""
        if not tag:
            raise InvalidInputError(f"{where}.tag", "is empty; say what the thing is")
        if len(tag) > MAX_TAG_CHARS or len(self.name) > MAX_TAG_CHARS:
            raise InvalidInputError(f"{where}.tag", f"tag and name are at most {MAX_TAG_CHARS} characters")
        for fld in ("x", "y"):
            v = getattr(self, fld)
            if v is not None and (not math.isfinite(v) or not 0.0 <= v <= 1.0):
                raise InvalidInputError(
                    f"{where}.{fld}", f"must be in [0, 1] (a share of the screen), got {v!r}"
                )
        if self.distance is not None and (not math.isfinite(self.distance) or self.distance < 0):
            raise InvalidInputError(f"{where}.distance", f"must be a distance >= 0, got {self.distance!r}")
        return SceneEntity(tag, self.name.strip(), self.x, self.y, self.distance)


def check_entities(entities: Sequence[SceneEntity]) -> list[SceneEntity]:
    if len(entities) > MAX_ENTITIES:
        raise InvalidInputError("scene", f"{len(entities)} entities, over the limit of {MAX_ENTITIES}")
    return [e.validate(i) for i, e in enumerate(entities)]


@dataclass(frozen=True)
class Fact:
    tag: str
    kind: str  # thing | terrain | time
    count: int = 1
    name: str = ""
    where: str = ""  # "on the left", "close by", ...
    score: float | None = None  # the head's, when it saw it
    source: str = "screenshot"  # screenshot | game | both


@dataclass
class SceneFacts:
    facts: list[Fact] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)  # tags the head is sure are not there

    @property
    def seen(self) -> list[tuple[str, float, str]]:
        """(tag, score, source) for the Done event: what the NPC was told is in view."""
        return [(f.tag, f.score if f.score is not None else 1.0, f.source) for f in self.facts]

    def note(self) -> str:
        """The line the decoder reads before the player's words ("" when nothing is known)."""
        things = [f for f in self.facts if f.kind == "thing"][:NOTE_ITEMS]
        grounds = [f.tag for f in self.facts if f.kind == "terrain"]
        times = [f.tag for f in self.facts if f.kind == "time"]
        parts = [_phrase(f) for f in things]
        tail = grounds[:2] + times[:1]
        if not parts and not tail:
            return ""
        text = ", ".join(parts) if parts else "nothing in particular"
        if tail:
            text += "; " + ", ".join(tail)
        return f"(In view: {text}.)\n"

    def word_groups(self, vocabulary: Mapping[str, TagSpec]) -> dict[str, str]:
        """word -> the tag it names: one bonus per thing, whichever of its words is said."""
        groups: dict[str, str] = {}
        for tag in [f.tag for f in self.facts] + self.absent:
            for w in vocabulary[tag].words if tag in vocabulary else (tag,):
                groups[w.lower()] = tag
        return groups

    def word_weights(
        self, vocabulary: Mapping[str, TagSpec], present: float, absent: float
    ) -> dict[str, float]:
        """word -> logit bonus: the words of present things up, of surely absent things down."""
        weights: dict[str, float] = {}
        if absent:
            for tag in self.absent:
                for w in vocabulary[tag].words if tag in vocabulary else (tag,):
                    weights[w.lower()] = -absent
        if present:
            for f in self.facts:
                if f.kind == "time":
                    continue  # "day" and "night" are too common to push
                words = vocabulary[f.tag].words if f.tag in vocabulary else (f.tag,)
                for w in (*words, *_name_words(f.name)):
                    weights[w.lower()] = present
        return weights


def _name_words(name: str) -> list[str]:
    """The capitalised words of a proper name ("Old Tom the ferryman" -> Old, Tom)."""
    return [w for w in name.replace(",", " ").split() if w[:1].isupper() and len(w) > 2]


def _where(e: SceneEntity) -> str:
    parts = []
    if e.x is not None:
        parts.append("on the left" if e.x < 0.34 else "on the right" if e.x > 0.66 else "ahead")
    if e.distance is not None:
        parts.append("close by" if e.distance < 5 else "far off" if e.distance > 30 else "")
    return " ".join(p for p in parts if p)


def _phrase(f: Fact) -> str:
    if f.name:
        label = f.name if f.tag.lower() in f.name.lower() else f"{f.name} the {f.tag}"
    elif f.count > 1:
        label = f"{f.count} {plural(f.tag)}"
    else:
        label = f"{'an' if f.tag[:1].lower() in 'aeiou' else 'a'} {f.tag}"
    return f"{label} {f.where}".strip()


_IRREGULAR_PLURALS = {"mouse": "mice", "fish": "fish", "cactus": "cacti"}


def plural(word: str) -> str:
    """A tag's plural: "boxes", "rubies", "keys", "mice". The one pluraliser: the NPC's scene note, the generated
    scene captions and the datasets' tag words all use it, so the model reads the words it was trained on."""
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def scene_words(
    facts: SceneFacts, vocabulary: Sequence[TagSpec], config: GenerationConfig
) -> tuple[dict[str, float], dict[str, str]]:
    """The turn's scene-word bias at the config's weights, and which thing each word names."""
    by_name = {t.name: t for t in vocabulary}
    weights = facts.word_weights(by_name, config.scene_word_weight, config.absent_word_weight)
    return weights, facts.word_groups(by_name)


def seen_tags(facts: SceneFacts) -> tuple[SeenTag, ...]:
    return tuple(SeenTag(tag, float(score), source) for tag, score, source in facts.seen)


def merge(
    tag_scores: Sequence[float] | None,
    vocabulary: Sequence[TagSpec],
    entities: Sequence[SceneEntity] = (),
) -> SceneFacts:
    """The head's scores (one per vocabulary tag, or None without a screenshot) and the game's entities, merged."""
    by_name = {t.name: t for t in vocabulary}
    facts: list[Fact] = []
    given: dict[str, int] = {}  # tag -> index in facts of the game's entry (proper names stay separate)
    for e in entities:
        spec = by_name.get(e.tag)
        kind = spec.kind if spec else "thing"
        if not e.name and e.tag in given:
            old = facts[given[e.tag]]
            facts[given[e.tag]] = Fact(old.tag, old.kind, old.count + 1, "", old.where, None, "game")
            continue
        facts.append(Fact(e.tag, kind, 1, e.name, _where(e), None, "game"))
        if not e.name:
            given[e.tag] = len(facts) - 1
    game_tags = {e.tag for e in entities}
    absent: list[str] = []
    if tag_scores is not None:
        seen = []
        for spec, score in zip(vocabulary, tag_scores, strict=True):
            if score >= spec.threshold:
                seen.append((float(score), spec))
            elif score < ABSENT_SCORE and spec.name not in game_tags:
                absent.append(spec.name)
        for score, spec in sorted(seen, key=lambda s: -s[0]):
            hits = [i for i, f in enumerate(facts) if f.tag == spec.name]
            for i in hits:  # the game named it too: one entry, the game's words and the head's score
                f = facts[i]
                facts[i] = Fact(f.tag, f.kind, f.count, f.name, f.where, round(score, 4), "both")
            if not hits:
                facts.append(Fact(spec.name, spec.kind, 1, "", "", round(score, 4), "screenshot"))
    return SceneFacts(facts, absent)
