"""Which declared action, if any, a player's line asks for; and its arguments, from the line and the scene.

Method, over the line's sentence vector (the MiniLM text encoder, mean-pooled and L2-normalised):
- what: the action whose example lines are closest (cosine) to the line, among those whose `when` conditions
  hold and that are not cooling down;
- whether: a request detector, a logistic regression on the same vectors trained when the decider is built
  (a fraction of a second) on generic lines that ask someone to do something or only talk
  (assets/action_requests.txt, assets/action_negatives.txt). Similarity alone cannot tell "sharpen my sword"
  from "my sword is sharp enough"; the detector can.
The action fires when its similarity reaches THRESHOLD and the request probability REQUEST. Both were
calibrated on the `tune` split of assets/eval/actions.jsonl (`npc-sdk eval --behaviour --calibrate`) and are
measured on its `test` split. No sampling: the same line, scene and state always give the same decision.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from ..personas.actions import Action, ActionParam
from .events import Action as ActionCall
from .scene import SceneFacts

THRESHOLD = 0.36  # calibrated (see the module docstring): tune split precision 0.96, recall 0.86
REQUEST = 0.30
_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen".split()
    )
} | {"a week": 7, "a fortnight": 14, "a couple": 2, "a night": 1, "tonight": 1}
_STOPWORDS = {"the", "a", "an", "of", "to", "and", "in", "on", "at"}


@dataclass
class ActionState:
    """Per conversation: when each action last fired (for cooldowns; recorded when the turn is finished)."""

    last_fired: dict[str, int] = field(default_factory=dict)  # action name -> turn number


def _asset_lines(name: str) -> list[str]:
    text = resources.files("npc_sdk").joinpath(f"assets/{name}").read_text(encoding="utf-8")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def request_lines() -> tuple[list[str], list[int]]:
    """(lines, 1 for a request to act / 0 for talk): the request detector's training set."""
    rows = [ln.split("\t", 1) for ln in _asset_lines("action_requests.txt")]
    lines = [t.strip() for _, t in rows] + _asset_lines("action_negatives.txt")
    return lines, [int(lab) for lab, _ in rows] + [0] * (len(lines) - len(rows))


def train_request_detector(x: np.ndarray, y: np.ndarray, steps: int = 1500) -> tuple[np.ndarray, float]:
    """Logistic regression by full-batch gradient descent in float64 (deterministic, no dependency)."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    w = np.zeros(x.shape[1])
    b = 0.0
    for _ in range(steps):
        g = 1.0 / (1.0 + np.exp(-(x @ w + b))) - y
        w -= x.T @ g / len(y) + 1e-3 * w
        b -= float(g.mean())
    return w, b


class ActionDecider:
    """Holds the example vectors of every persona's actions (built once per action list) and the negatives'."""

    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray]) -> None:
        self.embed = embed
        lines, labels = request_lines()
        self.weights, self.bias = train_request_detector(embed(lines), np.asarray(labels))
        self._examples: dict[tuple[str, ...], np.ndarray] = {}

    def _vectors(self, action: Action) -> np.ndarray:
        key = (action.name, *action.examples)
        if key not in self._examples:
            self._examples[key] = self.embed(action.examples)
        return self._examples[key]

    def scores(self, line_vector: np.ndarray, actions: Sequence[Action]) -> tuple[list[float], float]:
        """Per action, its best example similarity; and the probability that the line asks for an action."""
        v = line_vector.reshape(-1)
        request = 1.0 / (1.0 + np.exp(-(float(v.astype(np.float64) @ self.weights) + self.bias)))
        return [float((self._vectors(a) @ v).max()) for a in actions], float(request)

    def decide(
        self,
        line: str,
        line_vector: np.ndarray,
        actions: Sequence[Action],
        *,
        facts: SceneFacts | None = None,
        state: Mapping[str, str] | None = None,
        turn: int = 0,
        memory: ActionState | None = None,
        threshold: float = THRESHOLD,
        request: float = REQUEST,
    ) -> ActionCall | None:
        return self.decision(
            line,
            line_vector,
            actions,
            facts=facts,
            state=state,
            turn=turn,
            memory=memory,
            threshold=threshold,
            request=request,
        ).call

    def decision(
        self,
        line: str,
        line_vector: np.ndarray,
        actions: Sequence[Action],
        *,
        facts: SceneFacts | None = None,
        state: Mapping[str, str] | None = None,
        turn: int = 0,
        memory: ActionState | None = None,
        threshold: float = THRESHOLD,
        request: float = REQUEST,
    ) -> Decision:
        """The action the line asks for (`call`, None for none), with the scores it was decided on and the best
        action that did not fire, with why (the studio's "why this reply")."""
        why_not: dict[str, str] = {}
        for a in actions:
            if not _conditions_met(a, state or {}):
                why_not[a.name] = "when: " + ", ".join(f"{k} in {v}" for k, v in a.when.items())
            elif _cooling(a, turn, memory):
                why_not[a.name] = f"cooling down ({a.cooldown_turns} turns)"
        scores, asks = self.scores(line_vector, actions) if actions else ([], 0.0)
        out = Decision(
            None, dict(zip([a.name for a in actions], scores, strict=True)), asks, threshold, request
        )
        allowed = [i for i, a in enumerate(actions) if a.name not in why_not]
        if allowed:
            best = max(
                allowed, key=lambda i: (scores[i], -i)
            )  # np.argmax's choice: the first of equal scores
            action = actions[best]
            if scores[best] < threshold:
                why_not[action.name] = f"similarity {scores[best]:.2f} < {threshold:.2f}"
            elif asks < request:
                why_not[action.name] = f"not a request ({asks:.2f} < {request:.2f})"
            else:
                args = fill_args(action, line, facts)
                if args is None:
                    why_not[action.name] = "a required parameter is not in the line or the scene"
                else:
                    score = round(max(0.0, min(1.0, scores[best])), 4)
                    out.call = ActionCall(action.name, args, score)
            for i in allowed:
                if i != best:
                    why_not.setdefault(actions[i].name, f"another scores higher ({action.name})")
        out.rejected = why_not
        return out


@dataclass
class Decision:
    """One line's action decision: what fired and the numbers behind it (ActionDecider.decision)."""

    call: ActionCall | None  # the action that fired, with its arguments
    scores: dict[str, float]  # every declared action's best example similarity
    request: float  # the probability the line asks for an action at all
    threshold: float  # the similarity an action needs
    request_threshold: float  # the request probability a line needs
    rejected: dict[str, str] = field(default_factory=dict)  # action name -> why it did not fire

    def best_rejected(self) -> tuple[str, float, str] | None:
        """(name, similarity, why) of the highest-scoring action that did not fire."""
        if not self.rejected:
            return None
        name = max(self.rejected, key=lambda n: self.scores.get(n, 0.0))
        return name, self.scores.get(name, 0.0), self.rejected[name]


def action_note(action: Action) -> str:
    """What the decoder is told when the action fires, so the reply goes along with it."""
    return f"(You agree and {action.description.strip().rstrip('.')}.)\n"


def _conditions_met(action: Action, state: Mapping[str, str]) -> bool:
    """Every `when` key must be in the game state with one of its values (case-insensitive); a missing key fails."""
    lowered = {k: v.strip().lower() for k, v in state.items()}
    return all(lowered.get(k) in {v.lower() for v in allowed} for k, allowed in action.when.items())


def _cooling(action: Action, turn: int, memory: ActionState | None) -> bool:
    if memory is None or not action.cooldown_turns or action.name not in memory.last_fired:
        return False
    return turn - memory.last_fired[action.name] <= action.cooldown_turns


def _mentions(text: str, phrase: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(phrase.lower()) + r"s?(?!\w)", text) is not None


def fill_args(action: Action, line: str, facts: SceneFacts | None) -> dict[str, str | float] | None:
    """Arguments of their declared types, or None when a required one cannot be filled from the line or scene."""
    text = line.lower()
    args: dict[str, str | float] = {}
    for name, param in action.params.items():
        value = _arg(param, text, facts)
        if value is None:
            value = param.default
        if value is None:
            if param.required:
                return None
            continue
        args[name] = float(value) if param.type == "number" else str(value)
    return args


def _arg(param: ActionParam, text: str, facts: SceneFacts | None) -> str | float | None:
    if param.type == "number":
        m = re.search(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w.])", text)
        if m:
            return float(m[1])
        for words, n in sorted(_NUMBER_WORDS.items(), key=lambda kv: -len(kv[0])):
            if _mentions(text, words):
                return float(n)
        return None
    if param.type == "string":
        for choice in param.choices:
            if _mentions(text, choice):
                return choice
        for choice in param.choices:  # "the Keep" for "Ashen Keep": a distinctive word of the choice
            words = [w for w in re.findall(r"\w+", choice.lower()) if w not in _STOPWORDS and len(w) >= 4]
            if any(_mentions(text, w) for w in words):
                return choice
        return None
    # entity: a thing in view (the game's entities and what the screenshot showed), named in the line
    for fact in facts.facts if facts is not None else []:
        if fact.kind == "thing" and any(_mentions(text, n) for n in (fact.tag, fact.name) if n):
            return fact.tag
    return None
