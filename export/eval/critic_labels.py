"""Replies labelled by reading them, and the reply critic fitted to them (`npc-sdk eval --fit-critic`).

`corpus/labels/*.jsonl`: one reply a line, as `npc-sdk eval --corpus` wrote it (persona, line, history, in_view,
reply, fluency, finish_reason, variant) plus the reader's verdict: `acceptable` (true/false) and, when false,
`fails`: which of coherent, answers, in_character, true_to_view it fails. A quarter of the replies (by a hash of
their id and variant) is held out: the critic is fitted on the rest and its agreement reported on that quarter.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

from npc_sdk.personas.persona import Persona
from npc_sdk.runtime.critic import CriticWeights, ReplyCritic, fit_weights

LABELS = Path(__file__).resolve().parents[2] / "corpus" / "labels"
FAILS = ("coherent", "answers", "in_character", "true_to_view")
TARGET_PRECISION = 0.9  # asked of the training part when choosing the threshold; the goal is 0.85 held out


def read_labels(folder: Path = LABELS) -> list[dict]:
    rows = []
    for path in sorted(folder.glob("*.jsonl")):
        for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not raw.strip():
                continue
            row = json.loads(raw)
            if not isinstance(row.get("acceptable"), bool):
                raise ValueError(f"{path}:{n}: acceptable: must be true or false")
            bad = set(row.get("fails", [])) - set(FAILS)
            if bad:
                raise ValueError(f"{path}:{n}: fails: {sorted(bad)} (one of {', '.join(FAILS)})")
            rows.append(row)
    return rows


def held_out(row: dict) -> bool:
    return zlib.crc32(f"{row['id']}:{row.get('variant', '')}".encode()) % 4 == 0


def _threshold(scores: Sequence[float], labels: Sequence[bool], precision: float) -> float:
    """The lowest score threshold whose precision on these rows reaches `precision`; where none does, the one with
    the best F1 (so the critic still says "acceptable" of its likeliest replies, and its precision is reported)."""
    best, best_f1, f1_threshold = None, -1.0, 0.5
    positives = sum(labels)
    for t in sorted(set(scores), reverse=True):
        said = [lab for s, lab in zip(scores, labels, strict=True) if s >= t]
        if said and sum(said) / len(said) >= precision:
            best = t
        if said and positives:
            p, r = sum(said) / len(said), sum(said) / positives
            f1 = 2 * p * r / (p + r) if p + r else 0.0
            if f1 > best_f1:
                best_f1, f1_threshold = f1, t
    return float(best) if best is not None else float(f1_threshold)


def agreement(scores: Sequence[float], labels: Sequence[bool], threshold: float) -> dict:
    said = [s >= threshold for s in scores]
    tp = sum(a and b for a, b in zip(said, labels, strict=True))
    fp = sum(a and not b for a, b in zip(said, labels, strict=True))
    fn = sum(b and not a for a, b in zip(said, labels, strict=True))
    right = sum(a == b for a, b in zip(said, labels, strict=True))
    return {
        "replies": len(labels),
        "labelled_acceptable": sum(labels),
        "precision_acceptable": round(tp / (tp + fp), 3) if tp + fp else None,
        "recall_acceptable": round(tp / (tp + fn), 3) if tp + fn else None,
        "accuracy": round(right / len(labels), 3) if labels else None,
    }


def fit(critic_vectors, rows: Sequence[dict], personas: dict[str, Persona]) -> tuple[CriticWeights, dict]:
    """Weights fitted on three quarters of the labels, and the agreement on the held-out quarter."""
    critic = ReplyCritic(critic_vectors, CriticWeights({}, 0.5))
    feats = [
        critic.features(
            r["line"],
            personas[r["persona"]],
            [r["reply"]],
            [r.get("fluency")],
            [r.get("finish_reason", "stop")],
        )[0]
        for r in rows
    ]
    train = [i for i, r in enumerate(rows) if not held_out(r)]
    test = [i for i, r in enumerate(rows) if held_out(r)]
    weights = fit_weights([feats[i] for i in train], [rows[i]["acceptable"] for i in train])
    fitted = ReplyCritic(critic_vectors, CriticWeights(weights, 0.5))
    scores = [fitted.score(f) for f in feats]
    threshold = _threshold(
        [scores[i] for i in train], [rows[i]["acceptable"] for i in train], TARGET_PRECISION
    )
    report = {
        "threshold": round(threshold, 4),
        "train": agreement([scores[i] for i in train], [rows[i]["acceptable"] for i in train], threshold),
        "held_out": agreement([scores[i] for i in test], [rows[i]["acceptable"] for i in test], threshold),
        "weights": weights,
    }
    # the labels' fluency comes from the decoders that wrote them, so the shipped decoder's shift from those stays
    offset = CriticWeights.builtin().fluency_offset
    fitted_on = f"{len(train)} labelled replies (corpus/labels)"
    return CriticWeights(weights, round(threshold, 4), fitted_on, offset), report
