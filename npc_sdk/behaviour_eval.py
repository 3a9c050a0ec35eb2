"""`npc-sdk eval --behaviour`: how well the NPC picks actions and reads emotions, on hand-labelled sets.

Actions: assets/eval/actions.jsonl (player lines over the sample personas, positive and negative; `tune` calibrates
runtime/actions.py's thresholds with `--calibrate`, `test` is only measured): precision, recall, argument
accuracy, per-action figures, every error, and whether the reply goes along with the action (no refusal word).
Emotions: assets/eval/emotions.jsonl (replies with their player lines): accuracy, a confusion table and the
cost per reply. Runs on the onnxruntime model only.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .personas.files import load_persona
from .personas.persona import Persona
from .runtime.actions import REQUEST, THRESHOLD
from .runtime.emotion import EMOTIONS
from .runtime.events import Action
from .runtime.generation import GenerationConfig
from .runtime.onnx_model import OnnxNpcModel
from .runtime.scene import SceneEntity, SceneFacts

REFUSAL = re.compile(r"\b(no|not|can't|cannot|won't|wont|never|sorry|refuse|afraid|unable)\b", re.IGNORECASE)


def _rows(name: str) -> list[dict[str, Any]]:
    text = resources.files("npc_sdk").joinpath(f"assets/eval/{name}").read_text(encoding="utf-8")
    return [json.loads(ln) for ln in text.splitlines() if ln.strip()]


def _personas(folder: Path, rows: list[dict[str, Any]]) -> dict[str, Persona]:
    return {p: load_persona(folder / f"{p}.toml") for p in sorted({r["persona"] for r in rows})}


def _decide(model: OnnxNpcModel, persona: Persona, row: dict[str, Any], **thresholds: float) -> Action | None:
    scene = [SceneEntity(**e) for e in row["scene"]]
    facts: SceneFacts = model.scene_facts(None, scene)
    vector = model.sentence_vectors([row["line"]])[0]
    return model.action_decider.decide(
        row["line"], vector, persona.actions, facts=facts, state=row["state"], **thresholds
    )


def score_actions(rows: list[dict[str, Any]], predicted: list[Action | None]) -> dict[str, Any]:
    tp = sum(1 for r, p in zip(rows, predicted, strict=True) if p is not None and p.name == r["action"])
    fp = sum(1 for r, p in zip(rows, predicted, strict=True) if p is not None and p.name != r["action"])
    fn = sum(
        1
        for r, p in zip(rows, predicted, strict=True)
        if r["action"] and (p is None or p.name != r["action"])
    )
    args_ok = sum(
        1
        for r, p in zip(rows, predicted, strict=True)
        if p is not None
        and p.name == r["action"]
        and {k: _text(v) for k, v in p.args.items()} == _expected(r)
    )
    return {
        "lines": len(rows),
        "positive_lines": sum(1 for r in rows if r["action"]),
        "precision": round(tp / max(1, tp + fp), 3),
        "recall": round(tp / max(1, tp + fn), 3),
        "arguments_correct": round(args_ok / max(1, tp), 3),
    }


def _text(value: Any) -> str:
    return f"{float(value):g}" if isinstance(value, (int, float)) else str(value)


def _expected(row: dict[str, Any]) -> dict[str, str]:
    return {k: _text(v) for k, v in row["args"].items()}


def calibrate(
    model: OnnxNpcModel, personas: dict[str, Persona], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """The thresholds with the best recall at precision >= 0.95 on the tune split."""
    tune = [r for r in rows if r["split"] == "tune"]
    best: dict[str, Any] | None = None
    for threshold in np.arange(0.25, 0.80, 0.01):
        for request in np.arange(0.05, 0.95, 0.05):
            t, q = round(float(threshold), 2), round(float(request), 2)
            pred = [_decide(model, personas[r["persona"]], r, threshold=t, request=q) for r in tune]
            s = score_actions(tune, pred)
            if s["precision"] >= 0.95 and (best is None or s["recall"] > best["recall"]):
                best = {"threshold": t, "request": q, **s}
    return best or {}


def evaluate_actions(
    model: OnnxNpcModel, persona_dir: Path, *, replies: bool = True, log: Callable[[str], None] = print
) -> dict[str, Any]:
    rows = _rows("actions.jsonl")
    personas = _personas(persona_dir, rows)
    test = [r for r in rows if r["split"] == "test"]
    predicted = [_decide(model, personas[r["persona"]], r) for r in test]
    out: dict[str, Any] = {"threshold": THRESHOLD, "request": REQUEST, **score_actions(test, predicted)}
    out["tune"] = score_actions(
        [r for r in rows if r["split"] == "tune"],
        [_decide(model, personas[r["persona"]], r) for r in rows if r["split"] == "tune"],
    )
    per_action = {}
    for name in sorted({r["action"] for r in test if r["action"]}):
        sub = [
            (r, p)
            for r, p in zip(test, predicted, strict=True)
            if r["action"] == name or (p and p.name == name)
        ]
        per_action[name] = score_actions(
            [{**r, "action": r["action"] if r["action"] == name else None} for r, _ in sub],
            [p for _, p in sub],
        )
    out["per_action"] = per_action
    out["errors"] = [
        {"persona": r["persona"], "line": r["line"], "expected": r["action"], "got": p.name if p else None}
        for r, p in zip(test, predicted, strict=True)
        if (p.name if p else None) != r["action"]
    ]
    log(
        f"[actions] test: precision {out['precision']}, recall {out['recall']}, args {out['arguments_correct']}"
    )
    if replies:
        from .runtime.conversation import Conversation

        cfg = GenerationConfig(temperature=0.0, max_tokens=40)
        agreed, transcripts = 0, []
        fired = [
            (r, p) for r, p in zip(test, predicted, strict=True) if p is not None and p.name == r["action"]
        ]
        for i, (row, _) in enumerate(fired):
            with Conversation(model, personas[row["persona"]]) as conv:
                action, done = conv.turn(
                    row["line"],
                    config=cfg,
                    state=row["state"],
                    scene=[SceneEntity(**e) for e in row["scene"]],
                )
            ok = REFUSAL.search(done.text) is None
            agreed += ok
            if len(transcripts) < 12 or not ok:
                transcripts.append(
                    {
                        "persona": row["persona"],
                        "line": row["line"],
                        "action": action.name if action else None,
                        "reply": done.text,
                        "agrees": ok,
                    }
                )
            if i % 20 == 0:
                log(f"[actions] replies {i}/{len(fired)}")
        out["replies_without_refusal"] = round(agreed / max(1, len(fired)), 3)
        out["reply_transcripts"] = transcripts
        log(f"[actions] replies that go along with the action: {out['replies_without_refusal']}")
    return out


def evaluate_emotions(model: OnnxNpcModel, log: Callable[[str], None] = print) -> dict[str, Any]:
    rows = _rows("emotions.jsonl")
    model.emotion("warm-up", "")
    times, predicted = [], []
    for r in rows:
        t0 = time.perf_counter()
        predicted.append(model.emotion(r["reply"], r["line"]).label)
        times.append((time.perf_counter() - t0) * 1000)
    confusion = {e: {f: 0 for f in EMOTIONS} for e in EMOTIONS}
    for r, p in zip(rows, predicted, strict=True):
        confusion[r["label"]][p] += 1
    accuracy = sum(r["label"] == p for r, p in zip(rows, predicted, strict=True)) / len(rows)
    out = {
        "replies": len(rows),
        "accuracy": round(accuracy, 3),
        "ms_per_reply_median": round(statistics.median(times), 2),
        "confusion": confusion,
        "per_label_recall": {
            e: round(confusion[e][e] / max(1, sum(confusion[e].values())), 3) for e in EMOTIONS
        },
    }
    log(
        f"[emotions] accuracy {out['accuracy']} over {len(rows)} replies, {out['ms_per_reply_median']} ms each"
    )
    return out


def confusion_markdown(confusion: dict[str, dict[str, int]]) -> str:
    head = "| labelled \\ predicted | " + " | ".join(EMOTIONS) + " |\n|---|" + "---|" * len(EMOTIONS) + "\n"
    return head + "".join(
        f"| {e} | " + " | ".join(str(confusion[e][f]) for f in EMOTIONS) + " |\n" for e in EMOTIONS
    )


DIALOGUE = (
    "Who are you?",
    "What do you do here?",
    "Tell me something about this place.",
    "What should I do next?",
    "Anything else I should know?",
)


def _word_grams(text: str, n: int = 4) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def cross_turn_repetition(
    model: OnnxNpcModel, personas: list[Persona], *, seeds: int = 2, history_ngram: int = 4
) -> dict[str, Any]:
    """Share of replies (from the second turn on) that repeat a word 4-gram of one of the NPC's two previous
    replies, over a fixed five-line dialogue per persona and seed; with no_repeat_history on and off."""
    from .runtime.conversation import Conversation

    out: dict[str, Any] = {}
    for setting in (history_ngram, 0):
        repeats, replies, sample = 0, 0, []
        for persona in personas:
            for seed in range(seeds):
                cfg = GenerationConfig(seed=seed, max_tokens=40, no_repeat_history=setting)
                texts: list[str] = []
                with Conversation(model, persona) as conv:
                    for line in DIALOGUE:
                        texts.append(conv.reply(line, config=cfg, use_prefix=False).text)
                for i in range(1, len(texts)):
                    earlier = set().union(*(_word_grams(t) for t in texts[max(0, i - 2) : i]))
                    repeats += bool(_word_grams(texts[i]) & earlier)
                    replies += 1
                if seed == 0 and len(sample) < 2:
                    sample.append({"persona": persona.name, "replies": texts})
        key = "with_history_blocking" if setting else "without"
        out[key] = {"replies": replies, "repeating_a_recent_4gram": round(repeats / max(1, replies), 3)}
        out[key]["transcripts"] = sample
    return out
