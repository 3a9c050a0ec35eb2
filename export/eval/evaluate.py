"""`npc-sdk eval`: what the NPC sees (the grounding head) and what it says, on held-out pictures, in one run.

Head: per-tag precision and recall, their macro means and a confusion listing, on each evaluation split, from the
model folder's own fusion graph and its calibrated thresholds (what ships).

Replies (same items, same sampling seeds, same int4 decoder), variants:
  trained         the screenshot: prefix vectors, and the head's tags as the note and the scene-word bias;
  no_image        the same line with no screenshot and no scene facts (it hears, sees nothing);
  shuffled_image  another picture of the split (scored against the true picture);
  engine_facts    no screenshot; the game's scene facts are the picture's true labels (tags with counts).
Metrics: see metrics.py. Every turn is written to a Markdown transcript (picture, labels, what the head saw,
persona, line, each variant's reply), so anyone can read what the NPCs say.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from npc_sdk.personas.persona import Persona
from npc_sdk.runtime.generation import GenerationConfig
from npc_sdk.runtime.scene import SceneEntity

from ..data.datasets import Picture
from ..data.dialogue_data import SCENE_LINES, TALK_LINES
from ..data.scene_lexicon import repeats_itself
from ..train.grounding import head_markdown, head_metrics, labels_matrix
from .metrics import (
    distinct_n,
    is_grounded,
    is_hallucinating,
    names_a_thing_present,
    persona_predictions,
    rate,
)

VARIANTS = ("trained", "no_image", "shuffled_image", "engine_facts")
GOALS = {
    "head (heldout_family)": "macro precision >= 0.9, macro recall >= 0.8",
    "grounding_rate": ">= 0.7 and >= 5x shuffled_image (trained); >= 0.85 (engine_facts)",
    "hallucination_rate": "<= 0.1",
    "persona_id_accuracy": ">= 0.7 among 10, and not below no_image",
    "distinct_2": ">= 0.6",
    "repetition_rate": "<= 0.05",
}


def plan(pictures: Sequence[Picture], personas: Sequence[Persona], seed: int) -> list[dict]:
    """Two turns per picture by two personas: a scene question, then a scene question or ordinary talk."""
    rng = random.Random(f"npc-eval:{seed}")
    items = []
    for j in range(len(pictures)):
        for k, kind in enumerate(("scene", "scene" if j % 3 else "talk")):
            persona = personas[(j + k * (len(personas) // 2)) % len(personas)]
            line = rng.choice(SCENE_LINES if kind == "scene" else TALK_LINES)
            items.append(
                {
                    "scene": j,
                    "persona": persona.id,
                    "line": line,
                    "kind": kind,
                    "seed": seed * 10007 + len(items),
                }
            )
    return items


def true_entities(picture: Picture) -> list[SceneEntity]:
    """What a game's scene graph would say of a picture: every labelled thing (boxes give counts), its tags."""
    counted = Counter(tag for tag, _ in picture.boxes)
    entities = [SceneEntity(tag) for tag, n in counted.items() for _ in range(n)]
    return entities + [SceneEntity(t) for t in picture.tags if t not in counted]


def evaluate_head(runtime, splits: dict[str, Sequence[Picture]], log: Callable[[str], None] = print) -> dict:
    """Per-tag precision/recall of the model folder's head (its fusion graph, its thresholds) on each split."""
    vocab = [t.name for t in runtime.tags]
    thresholds = np.asarray([t.threshold for t in runtime.tags], dtype=np.float32)
    persona = Persona(name="Eval")
    out = {}
    for name, pictures in splits.items():
        started = time.perf_counter()
        probs = np.stack([runtime.see("What is that?", persona, p.image.read_bytes())[1] for p in pictures])
        labels = labels_matrix([p.tags for p in pictures], vocab)
        out[name] = head_metrics(probs, labels, thresholds, vocab)
        m = out[name]
        log(
            f"  head on {name}: macro precision {m['macro_precision']}, macro recall {m['macro_recall']} "
            f"({len(pictures)} pictures, {time.perf_counter() - started:.0f} s)"
        )
    return out


def evaluate(
    runtime,
    pictures: Sequence[Picture],
    personas: Sequence[Persona],
    *,
    seed: int = 0,
    max_tokens: int = 48,
    variants: Sequence[str] = VARIANTS,
    weights: dict[str, float] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[dict, list[dict]]:
    """Replies from the model folder under test for each variant; the metrics and one record per reply.

    `weights` overrides the scene-word weights of GenerationConfig (scene_word_weight, absent_word_weight)."""
    by_id = {p.id: p for p in personas}
    items = plan(pictures, personas, seed)
    images = [p.image.read_bytes() for p in pictures]
    persona_vecs = np.concatenate([runtime.encode_role(p) for p in personas])
    results: dict[str, dict] = {}
    records: list[dict] = []
    for variant in variants:
        started = time.perf_counter()
        replies = []
        for n, item in enumerate(items):
            picture, persona = pictures[item["scene"]], by_id[item["persona"]]
            config = persona.generation_defaults(
                GenerationConfig(max_tokens=max_tokens, temperature=0.7, top_p=0.9)
            ).with_(seed=item["seed"], max_tokens=max_tokens, **(weights or {}))
            shown: int | None = {
                "trained": item["scene"],
                "no_image": None,
                "shuffled_image": (item["scene"] + 1 + n % (len(pictures) - 1)) % len(pictures),
                "engine_facts": None,
            }[variant]
            scene = true_entities(picture) if variant == "engine_facts" else []
            done = runtime.reply(
                item["line"],
                persona=persona,
                config=config,
                screenshot=None if shown is None else images[shown],
                scene=scene,
            )
            replies.append(done.text)
            records.append(
                {
                    "variant": variant,
                    **item,
                    "picture": picture.image.name,
                    "tags": picture.tags,
                    "seen": [f"{s.tag} {s.score:.2f}" for s in done.seen],
                    "reply": done.text,
                }
            )
            if (n + 1) % 40 == 0:
                log(f"  {variant}: {n + 1}/{len(items)} replies")
        results[variant] = score(runtime, items, replies, pictures, personas, persona_vecs)
        results[variant]["seconds"] = round(time.perf_counter() - started, 1)
        log(f"  {variant}: " + ", ".join(f"{k} {v}" for k, v in results[variant].items()))
    g, s = results.get("trained", {}), results.get("shuffled_image", {})
    if g and s:
        results["grounding_vs_shuffled"] = round(g["grounding_rate"] / max(s["grounding_rate"], 1e-9), 2)
        results["thing_grounding_vs_shuffled"] = round(
            g["thing_grounding_rate"] / max(s["thing_grounding_rate"], 1e-9), 2
        )
    results["meta"] = {
        "pictures": len(pictures),
        "items": len(items),
        "personas": [p.id for p in personas],
        "scene_items": sum(i["kind"] == "scene" for i in items),
        "goals": GOALS,
        "max_tokens": max_tokens,
        "seed": seed,
        "generation": {**GenerationConfig().__dict__, **(weights or {})},
    }
    return results, records


def score(
    runtime,
    items: Sequence[dict],
    replies: Sequence[str],
    pictures: Sequence[Picture],
    personas: Sequence[Persona],
    persona_vecs: np.ndarray,
) -> dict:
    present = [pictures[i["scene"]].tags for i in items]
    scene_idx = [k for k, i in enumerate(items) if i["kind"] == "scene"]
    ids = [p.id for p in personas]
    predicted = persona_predictions(runtime.sentence_vectors([r or "..." for r in replies]), persona_vecs)
    return {
        "grounding_rate": rate([is_grounded(replies[k], present[k]) for k in scene_idx]),
        "thing_grounding_rate": rate([names_a_thing_present(replies[k], present[k]) for k in scene_idx]),
        "hallucination_rate": rate([is_hallucinating(r, p) for r, p in zip(replies, present, strict=True)]),
        "persona_id_accuracy": rate([ids[p] == i["persona"] for p, i in zip(predicted, items, strict=True)]),
        "distinct_2": round(distinct_n(replies, 2), 4),
        "repetition_rate": rate([repeats_itself(r) for r in replies]),
        "replies": len(replies),
    }


def markdown_table(results: dict) -> str:
    cols = (
        "grounding_rate",
        "thing_grounding_rate",
        "hallucination_rate",
        "persona_id_accuracy",
        "distinct_2",
        "repetition_rate",
    )
    lines = ["| variant | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for v in VARIANTS:
        if v in results:
            lines.append(f"| {v} | " + " | ".join(f"{results[v][c]:.3f}" for c in cols) + " |")
    if "grounding_vs_shuffled" in results:
        lines.append(f"\ngrounding, trained / shuffled_image: {results['grounding_vs_shuffled']}x")
    if "thing_grounding_vs_shuffled" in results:
        lines.append(f"things only, trained / shuffled_image: {results['thing_grounding_vs_shuffled']}x")
    return "\n".join(lines) + "\n"


def transcript_markdown(records: Sequence[dict], title: str) -> str:
    """Every turn once, with each variant's reply under it: what a reader needs to judge the NPCs."""
    by_item: dict[tuple, dict[str, dict]] = {}
    for r in records:
        by_item.setdefault((r["scene"], r["persona"], r["line"], r["seed"]), {})[r["variant"]] = r
    lines = [f"# {title}", "", "Variants: " + ", ".join(VARIANTS) + " (see export/eval/evaluate.py).", ""]
    for n, variants in enumerate(by_item.values(), start=1):
        first = next(iter(variants.values()))
        seen = variants.get("trained", {}).get("seen")
        lines += [
            f"## {n}. {first['persona']} · {first['picture']}",
            "",
            f"- labels: {', '.join(first['tags'])}",
            f"- the head saw: {', '.join(seen) if seen else 'nothing'}" if seen is not None else "",
            f"- player ({first['kind']}): {first['line']}",
            "",
        ]
        for v in VARIANTS:
            if v in variants:
                lines.append(f"> **{v}**: {variants[v]['reply'] or '(empty)'}")
                lines.append(">")
        lines[-1] = ""
    return "\n".join(line for line in lines if line is not None) + "\n"


def write_report(
    results: dict, records: Sequence[dict], json_path: Path, head: dict | None = None
) -> tuple[Path, Path]:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**results, "head": head} if head else results
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    md = json_path.with_suffix(".md")
    parts = ["## Replies\n", markdown_table(results)]
    if head:
        parts.append("\n## What the NPC sees (grounding head)\n")
        parts += [head_markdown(name, metrics) + "\n" for name, metrics in head.items()]
    md.write_text("\n".join(parts))
    json_path.with_suffix(".replies.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    transcript = json_path.with_name(json_path.stem + ".transcripts.md")
    transcript.write_text(transcript_markdown(records, f"Transcripts: {json_path.stem}"))
    return md, transcript
