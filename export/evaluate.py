"""`npc-sdk eval`: replies on held-out scenes from the trained fusion and three ablations, in one run.

Variants (same items, same sampling seeds, same decoder):
  trained         prefix vectors from the trained fusion, with the screenshot;
  no_image        the same fusion without a screenshot (it hears the line, sees nothing);
  shuffled_image  the same fusion shown another held-out scene's screenshot (scored against the true scene);
  text_tags       no prefix vectors; the scene's labels written into the prompt as a note before the line
                  (what a game could do by hand if it knew its scene labels: the upper bound to aim at).
Replies come from an onnxruntime model folder (the shipped engine, its own fusion graph and decoder): `npc-sdk eval`
exports the weights under test into one first. Metrics: see metrics.py.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from npc_sdk.personas.persona import Persona
from npc_sdk.runtime.generation import GenerationConfig

from .dialogue_data import SCENE_LINES, TALK_LINES, with_note
from .metrics import (
    distinct_n,
    is_grounded,
    is_hallucinating,
    persona_predictions,
    rate,
    repeats_itself,
)
from .scenes import Scene

VARIANTS = ("trained", "no_image", "shuffled_image", "text_tags")
GOALS = {
    "grounding_rate": ">= 0.6 and >= 4x shuffled_image",
    "hallucination_rate": "<= 0.15",
    "persona_id_accuracy": ">= 0.7 among 10 personas",
}


def plan(scenes: Sequence[Scene], personas: Sequence[Persona], seed: int) -> list[dict]:
    """Two turns per scene by two personas: a scene question, then a scene question or ordinary talk."""
    rng = random.Random(f"npc-eval:{seed}")
    items = []
    for j in range(len(scenes)):
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


def tag_note(persona: Persona, scene: Scene) -> str:
    return f"What {persona.name} sees right now: {', '.join(scene.categories)}; {scene.time}."


def evaluate(
    runtime,
    scenes: Sequence[Scene],
    images: Path,
    personas: Sequence[Persona],
    *,
    seed: int = 0,
    max_tokens: int = 48,
    variants: Sequence[str] = VARIANTS,
    log: Callable[[str], None] = print,
) -> tuple[dict, list[dict]]:
    """Replies from the model folder under test (its own fusion graph, its own decoder) for each variant."""
    by_id = {p.id: p for p in personas}
    items = plan(scenes, personas, seed)
    pictures = [(images / s.file).read_bytes() for s in scenes]
    persona_vecs = np.concatenate([runtime.encode_role(p) for p in personas])
    results: dict[str, dict] = {}
    records: list[dict] = []
    for variant in variants:
        started = time.perf_counter()
        replies = []
        for n, item in enumerate(items):
            scene, persona = scenes[item["scene"]], by_id[item["persona"]]
            config = GenerationConfig(max_tokens=max_tokens, temperature=0.7, top_p=0.9, seed=item["seed"])
            if variant == "text_tags":
                noted = with_note(persona, tag_note(persona, scene))
                done = runtime.reply(item["line"], persona=noted, config=config, use_prefix=False)
            else:
                shown = {
                    "trained": item["scene"],
                    "no_image": None,
                    "shuffled_image": (item["scene"] + 1 + n % (len(scenes) - 1)) % len(scenes),
                }[variant]
                picture = None if shown is None else pictures[shown]
                done = runtime.reply(item["line"], persona=persona, config=config, screenshot=picture)
            replies.append(done.text)
            records.append({"variant": variant, **item, "scene_file": scene.file, "reply": done.text})
            if (n + 1) % 40 == 0:
                log(f"  {variant}: {n + 1}/{len(items)} replies")
        results[variant] = score(runtime, items, replies, scenes, personas, persona_vecs)
        results[variant]["seconds"] = round(time.perf_counter() - started, 1)
        log(f"  {variant}: " + ", ".join(f"{k} {v}" for k, v in results[variant].items()))
    g, s = results.get("trained", {}), results.get("shuffled_image", {})
    if g and s:
        results["grounding_vs_shuffled"] = round(g["grounding_rate"] / max(s["grounding_rate"], 1e-9), 2)
    results["meta"] = {
        "scenes": len(scenes),
        "items": len(items),
        "personas": [p.id for p in personas],
        "scene_items": sum(i["kind"] == "scene" for i in items),
        "goals": GOALS,
        "max_tokens": max_tokens,
        "seed": seed,
    }
    return results, records


def score(
    runtime,
    items: Sequence[dict],
    replies: Sequence[str],
    scenes: Sequence[Scene],
    personas: Sequence[Persona],
    persona_vecs: np.ndarray,
) -> dict:
    present = [scenes[i["scene"]].categories for i in items]
    scene_idx = [k for k, i in enumerate(items) if i["kind"] == "scene"]
    ids = [p.id for p in personas]
    predicted = persona_predictions(runtime.sentence_vectors([r or "..." for r in replies]), persona_vecs)
    return {
        "grounding_rate": rate([is_grounded(replies[k], present[k]) for k in scene_idx]),
        "hallucination_rate": rate([is_hallucinating(r, p) for r, p in zip(replies, present, strict=True)]),
        "persona_id_accuracy": rate([ids[p] == i["persona"] for p, i in zip(predicted, items, strict=True)]),
        "distinct_2": round(distinct_n(replies, 2), 4),
        "repetition_rate": rate([repeats_itself(r) for r in replies]),
        "replies": len(replies),
    }


def markdown_table(results: dict) -> str:
    cols = ("grounding_rate", "hallucination_rate", "persona_id_accuracy", "distinct_2", "repetition_rate")
    lines = ["| variant | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for v in VARIANTS:
        if v in results:
            lines.append(f"| {v} | " + " | ".join(f"{results[v][c]:.3f}" for c in cols) + " |")
    if "grounding_vs_shuffled" in results:
        lines.append(f"\ngrounding, trained / shuffled_image: {results['grounding_vs_shuffled']}x")
    return "\n".join(lines) + "\n"


def write_report(results: dict, records: Sequence[dict], json_path: Path) -> Path:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md = json_path.with_suffix(".md")
    md.write_text(markdown_table(results))
    json_path.with_suffix(".replies.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return md
