"""Events a streamed reply yields: at most one Action first, text deltas as they are decoded, then one Done."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..personas.lore import LoreHit


@dataclass(frozen=True)
class Delta:
    text: str  # new text since the previous event
    snapshot: str  # the reply so far, this delta included
    type: Literal["delta"] = "delta"


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int  # positions the decoder read for this turn (tokens + prefix vectors)
    completion_tokens: int  # tokens generated, the stopping one included
    cached_tokens: int = 0  # prompt positions served from a reused KV state


@dataclass(frozen=True)
class Timings:
    ttft_ms: float  # from the call to the first token (encoders, fusion and prefill included)
    total_ms: float  # from the call to the last token
    decode_tokens_per_second: float  # tokens after the first, over the time after the first


@dataclass(frozen=True)
class SeenTag:
    tag: str  # what the NPC was told is in view
    score: float  # the image head's probability (1.0 for what only the game said)
    source: str  # "screenshot", "game" or "both"


@dataclass(frozen=True)
class Emotion:
    label: str  # neutral | joy | anger | sadness | fear | surprise | disgust
    intensity: float  # 0..1: how clearly the reply carries it


@dataclass(frozen=True)
class Candidate:
    """One of the best-of-N replies decoded for a turn, with the critic's score (runtime/critic.py)."""

    text: str
    score: float  # 0..1
    failed: tuple[str, ...] = ()  # the critic's rules it broke


@dataclass(frozen=True)
class Action:
    """A declared action the player's line asked for: sent before the reply's first delta."""

    name: str  # one of the persona's declared actions
    args: dict[str, str | float] = field(
        default_factory=dict
    )  # typed as declared: text, number, or an entity tag
    confidence: float = 0.0  # similarity of the line to the action's closest example (0..1)
    type: Literal["action"] = "action"


@dataclass(frozen=True)
class BiasedWord:
    word: str
    weight: float  # the logit bonus the sampler gives the word (negative: pushed down)
    source: str  # "role" | "scene" | "absent"


@dataclass(frozen=True)
class ActionOption:
    name: str
    score: float  # similarity of the line to the action's closest example
    reason: str  # why it did not fire


@dataclass(frozen=True)
class ActionDecision:
    """How the line's action was decided (runtime/actions.py): the one that fired, if any, and the best other."""

    name: str  # the action that fired; "" when none did
    score: float  # its similarity (0 when none fired)
    request: float  # the request detector's probability that the line asks for an action
    threshold: float  # the similarity an action needs
    request_threshold: float  # the request probability a line needs
    best_rejected: ActionOption | None = None


@dataclass(frozen=True)
class Explanation:
    """Why this reply (ChatRequest.explain): what went into the prompt and the sampler. Made only when asked for;
    nothing generated depends on it."""

    lore: tuple[LoreHit, ...] = ()  # in the order shown
    memory_note: str = ""  # earlier exchanges recalled once the history window rolled past them
    recalled_turns: tuple[int, ...] = ()  # the stored turns the memory note quotes
    history_start: int = 0  # the first stored turn the prompt shows
    history_turns: int = 0  # stored turns the prompt shows
    scene_note: str = ""
    state_note: str = ""
    action_note: str = ""
    context: str = ""  # everything told just before the player's line
    biased_words: tuple[BiasedWord, ...] = ()  # strongest first
    action: ActionDecision | None = None  # when the persona declares actions
    emotion_scores: tuple[Emotion, ...] = ()  # every label with its share, most likely first


@dataclass(frozen=True)
class Done:
    text: str  # the whole reply, stop string excluded
    finish_reason: Literal["stop", "length"]  # EOS or a stop string / max_tokens reached
    usage: Usage
    timings: Timings
    token_ids: tuple[int, ...] = field(
        default=(), repr=False
    )  # generated ids (EOS included when it ended the reply)
    seen: tuple[SeenTag, ...] = ()  # what the NPC saw or was told is in view this turn, most certain first
    emotion: Emotion | None = None  # what the reply carries, for the game's animation
    replayed: bool = False  # a retried turn_id: the stored reply, not generated again
    fluency: float | None = None  # mean log-probability of the reply's tokens before any bias (the critic's)
    candidates: tuple[Candidate, ...] = ()  # best-of-N: every candidate with its critic score, chosen first
    explanation: Explanation | None = None  # why this reply, when the turn was asked to explain itself
    type: Literal["done"] = "done"


ReplyEvent = Action | Delta | Done
