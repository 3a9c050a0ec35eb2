"""The emotion a reply carries, from a fixed set, for the game's animation: one text-encoder pass per reply.

Method: the reply (and, with a small weight, the player's line) as a MiniLM sentence vector, compared with
hand-written prototype replies per label (assets/emotion_prototypes.jsonl): a label's score is the mean of its
three closest prototypes; the label is the best score, the intensity its softmax share. Measured on
assets/eval/emotions.jsonl (`npc-sdk eval --emotions`), which shares no line with the prototypes.
Deterministic: the same reply and line always give the same emotion.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np

EMOTIONS = ("neutral", "joy", "anger", "sadness", "fear", "surprise", "disgust")
LINE_WEIGHT = 0.2  # the player's line tips ambiguous replies ("Really?" after good news or bad)
TOP = 3
TEMPERATURE = 0.03  # cosine differences between labels are a few hundredths


@dataclass(frozen=True)
class Emotion:
    label: str  # one of EMOTIONS
    intensity: float  # 0..1: how clearly the reply carries it


def prototypes() -> list[tuple[str, str]]:
    text = resources.files("npc_sdk").joinpath("assets/emotion_prototypes.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
    return [(r["label"], r["text"]) for r in rows]


class EmotionClassifier:
    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray]) -> None:
        self.embed = embed
        rows = prototypes()
        vectors = embed([t for _, t in rows])
        self.by_label = {e: vectors[[i for i, (lab, _) in enumerate(rows) if lab == e]] for e in EMOTIONS}

    def classify(
        self,
        reply: str,
        line: str = "",
        reply_vector: np.ndarray | None = None,
        line_vector: np.ndarray | None = None,
    ) -> Emotion:
        """Vectors already computed this turn (the line's, by the action decision) are used, not recomputed."""
        best = self.shares(reply, line, reply_vector, line_vector)[0]
        return Emotion(best.label, round(best.intensity, 3))

    def shares(
        self,
        reply: str,
        line: str = "",
        reply_vector: np.ndarray | None = None,
        line_vector: np.ndarray | None = None,
    ) -> list[Emotion]:
        """Every label with its softmax share, most likely first (ties in label order): `classify` takes the
        first. The studio shows them all ("why this reply")."""
        wanted = [t for t, v in ((reply, reply_vector), (line, line_vector)) if v is None and t.strip()]
        made = iter(self.embed(wanted)) if wanted else iter(())
        r = reply_vector.reshape(-1) if reply_vector is not None else next(made)
        v = r
        if line.strip():
            lv = line_vector.reshape(-1) if line_vector is not None else next(made)
            v = (1 - LINE_WEIGHT) * r + LINE_WEIGHT * lv
        v = v / (np.linalg.norm(v) + 1e-8)
        scores = np.array([np.sort(self.by_label[e] @ v)[-TOP:].mean() for e in EMOTIONS])
        probs = np.exp((scores - scores.max()) / TEMPERATURE)
        probs /= probs.sum()
        order = sorted(range(len(EMOTIONS)), key=lambda i: (-scores[i], i))  # np.argmax's pick comes first
        return [Emotion(EMOTIONS[i], float(probs[i])) for i in order]
