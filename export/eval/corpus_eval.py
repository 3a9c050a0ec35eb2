"""`npc-sdk eval --corpus`: replies to the held-out personas' written lines, on the int4 runtime, judged.

Every held-out item is played as a game would play it: its earlier turns in the history (with their prefix
vectors), its screenshot (a picture rendered for its `in_view` from the held-out layout families) or the game's
entities, its line. Variants of one model folder, same seeds:

  default      GenerationConfig as shipped (best of N included);
  single       one candidate, the biases as shipped;
  no_bias      one candidate, scene-, absent- and role-word biases off;
  no_prefix    one candidate, no fusion prefix vectors (the scene note still comes from the head's tags);
  sentences_N  one candidate, the reply ends after N sentences (sentences_0: no limit; the default is 1);
  best_of_N    N candidates, the reply critic picks one;
  FIELD=VALUE  one candidate with a GenerationConfig field changed (`temperature=0.3`); `+` joins a variant and
               overrides (`best_of_2+temperature=0.3`).

Metrics: acceptability by the reply critic (runtime/critic.py), grounding and thing-grounding of scene lines
counting acceptable replies only, hallucination, persona identification among the held-out personas, distinct-2,
repetition. Every reply is written to a Markdown transcript and to a JSONL that labelling reads.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from npc_sdk.personas.persona import Persona
from npc_sdk.personas.prompt import Turn, turn_context
from npc_sdk.runtime.conversation import Conversation
from npc_sdk.runtime.generation import GenerationConfig
from npc_sdk.runtime.scene import SceneEntity

from ..data.corpus import CorpusItem
from ..data.corpus_scenes import open_picture, render_corpus_scenes
from ..data.scene_lexicon import repeats_itself
from .metrics import (
    distinct_n,
    is_grounded,
    is_hallucinating,
    names_a_thing_present,
    persona_predictions,
    rate,
)

VARIANTS = ("default", "sentences_0", "no_bias", "no_prefix", "best_of_4")
GOALS = {
    "acceptable": ">= 0.8 by the critic",
    "scene_grounding_acceptable": ">= 0.7",
    "hallucination_rate": "<= 0.1",
    "persona_id_accuracy": ">= 0.7",
}


def variant_config(name: str, base: GenerationConfig) -> tuple[GenerationConfig, bool]:
    """(config, use_prefix) of a variant."""
    head, *overrides = name.split("+")
    if "=" in head:
        head, overrides = "single", [head, *overrides]
    config, use_prefix = _named_variant(head, base)
    for override in overrides:
        field_name, _, text = override.partition("=")
        current = getattr(config, field_name, None)
        if not text or isinstance(current, (tuple, type(None))) or field_name.startswith("_"):
            raise ValueError(f"variant {name!r}: {override!r} is not FIELD=VALUE of a number field")
        config = config.with_(**{field_name: type(current)(float(text)) if isinstance(current, int) else float(text)})
    config.validate()
    return config, use_prefix


def _named_variant(name: str, base: GenerationConfig) -> tuple[GenerationConfig, bool]:
    if name == "default":
        return base, True
    single = base.with_(candidates=1)
    if name == "single":
        return single, True
    if name == "no_bias":
        return single.with_(scene_word_weight=0.0, absent_word_weight=0.0, role_word_scale=0.0), True
    if name == "no_prefix":
        return single, False
    if name.startswith("sentences_") and name[10:].isdigit():  # sentences_0: no sentence limit
        return single.with_(max_sentences=int(name[10:])), True
    if name.startswith("best_of_") and name[8:].isdigit():
        return base.with_(candidates=int(name[8:])), True
    raise ValueError(f"unknown variant {name!r} (one of {', '.join(VARIANTS)})")


def _history(runtime, persona: Persona, item: CorpusItem, use_prefix: bool) -> list[Turn]:
    turns: list[Turn] = []
    for user, reply in item.history:
        prefix = runtime.see(user, persona, None)[0] if use_prefix else None
        turns.append(Turn(user, reply, prefix, turn_context(runtime.tokenizer, persona, turns, user)))
    return turns


def play(
    runtime,
    item: CorpusItem,
    persona: Persona,
    picture: tuple[Path, list[str]] | None,
    variant: str,
    seed: int,
    base: GenerationConfig | None = None,
) -> dict:
    """One item's reply under one variant, with what the metrics need."""
    config, use_prefix = variant_config(variant, base or persona.generation_defaults())
    config = config.with_(seed=seed, max_tokens=60)
    conv = Conversation(runtime, persona, _history(runtime, persona, item, use_prefix))
    entities = [SceneEntity(e.tag, e.name, e.x) for e in item.entities]
    started = time.perf_counter()
    try:
        done = conv.reply(
            item.line,
            screenshot=open_picture(picture[0]) if picture else None,
            scene=entities,
            config=config,
            use_prefix=use_prefix,
        )
    finally:
        conv.close()
    present = (picture[1] if picture else list(item.in_view)) + [e.tag for e in item.entities]
    return {
        "id": item.id,
        "variant": variant,
        "persona": item.persona,
        "kind": item.kind,
        "history": [list(t) for t in item.history],
        "line": item.line,
        "in_view": present,
        "seen": [s.tag for s in done.seen],
        "reply": done.text,
        "written": item.reply,
        "fluency": done.fluency,
        "finish_reason": done.finish_reason,
        "ttft_ms": round(done.timings.ttft_ms, 1),
        "wall_ms": round((time.perf_counter() - started) * 1000, 1),
        "candidates": [{"text": c.text, "score": c.score, "failed": list(c.failed)} for c in done.candidates],
    }


def evaluate_corpus(
    runtime,
    items: Sequence[CorpusItem],
    personas: dict[str, Persona],
    *,
    variants: Sequence[str] = VARIANTS,
    per_persona: int = 20,
    seed: int = 1,
    split: str = "heldout",
    log: Callable[[str], None] = print,
) -> tuple[dict, list[dict]]:
    """Metrics per variant over the held-out items (`per_persona` of each held-out persona, scene ones kept in
    proportion), and every record."""
    held = [i for i in items if i.split == split]
    if not held:
        raise ValueError(f"the corpus has no {split} items")
    rng = random.Random(f"corpus-eval:{seed}")
    chosen: list[CorpusItem] = []
    for pid in sorted({i.persona for i in held}):
        mine = [i for i in held if i.persona == pid]
        chosen += rng.sample(mine, min(per_persona, len(mine)))
    pictures = render_corpus_scenes(chosen, log=log)
    records: list[dict] = []
    for v in variants:
        started = time.perf_counter()
        for k, item in enumerate(chosen):
            records.append(
                play(runtime, item, personas[item.persona], pictures.get(item.id), v, seed * 1000 + k)
            )
        log(f"  {v}: {len(chosen)} replies in {time.perf_counter() - started:.0f} s")
    judge(runtime, records, personas)
    return score(runtime, records, personas), records


def judge(runtime, records: list[dict], personas: dict[str, Persona]) -> None:
    """The critic's verdict on every record, in place."""
    for r in records:
        v = runtime.critic.judge(
            r["line"], personas[r["persona"]], [r["reply"]], [r["fluency"]], [r["finish_reason"]]
        )[0]
        r["critic_score"], r["critic_acceptable"], r["critic_failed"] = v.score, v.acceptable, list(v.failed)


def score(runtime, records: Sequence[dict], personas: dict[str, Persona]) -> dict:
    ids = sorted({r["persona"] for r in records})
    role = np.concatenate([runtime.encode_role(personas[p]) for p in ids])
    out: dict = {"meta": {"personas": ids, "items": len({r["id"] for r in records})}, "goals": GOALS}
    for v in sorted({r["variant"] for r in records}):
        rs = [r for r in records if r["variant"] == v]
        scene = [r for r in rs if r["kind"] == "scene" and r["in_view"]]
        ok_scene = [r for r in scene if r["critic_acceptable"]]
        vectors = runtime.sentence_vectors([r["reply"] or "..." for r in rs])
        predicted = persona_predictions(vectors, role)
        out[v] = {
            "replies": len(rs),
            "acceptable": rate([r["critic_acceptable"] for r in rs]),
            "scene_lines": len(scene),
            "scene_grounding": rate([is_grounded(r["reply"], r["in_view"]) for r in scene]),
            "scene_grounding_acceptable": rate(
                [r["critic_acceptable"] and is_grounded(r["reply"], r["in_view"]) for r in scene]
            ),
            "scene_thing_grounding": rate([names_a_thing_present(r["reply"], r["in_view"]) for r in scene]),
            "acceptable_scene_grounding": rate([is_grounded(r["reply"], r["in_view"]) for r in ok_scene]),
            "hallucination_rate": rate([is_hallucinating(r["reply"], r["in_view"]) for r in scene]),
            "persona_id_accuracy": rate(
                [ids[int(p)] == r["persona"] for p, r in zip(predicted, rs, strict=True)]
            ),
            "distinct_2": round(distinct_n([r["reply"] for r in rs]), 3),
            "repetition_rate": rate([repeats_itself(r["reply"]) for r in rs]),
            "median_ttft_ms": float(np.median([r["ttft_ms"] for r in rs])),
        }
    return out


def markdown(results: dict, records: Sequence[dict], title: str) -> str:
    variants = [k for k in results if k not in ("meta", "goals")]
    keys = [k for k in results[variants[0]] if k != "replies"]
    lines = [
        f"# {title}",
        "",
        "| metric | " + " | ".join(variants) + " |",
        "|---" * (len(variants) + 1) + "|",
    ]
    lines += [f"| {k} | " + " | ".join(str(results[v][k]) for v in variants) + " |" for k in keys]
    lines += ["", "## Replies", ""]
    by_id: dict[str, list[dict]] = {}
    for r in records:
        by_id.setdefault(r["id"], []).append(r)
    for rid, rs in by_id.items():
        r0 = rs[0]
        lines.append(f"### {rid} ({r0['persona']}, {r0['kind']})")
        for u, a in r0["history"]:
            lines.append(f'- earlier: player "{u}" / npc "{a}"')
        if r0["in_view"]:
            lines.append(f"- in view: {', '.join(r0['in_view'])}; seen: {', '.join(r0['seen']) or 'nothing'}")
        lines.append(f"- **player:** {r0['line']}")
        lines.append(f"- written: {r0['written']}")
        for r in rs:
            mark = "ok" if r["critic_acceptable"] else "no: " + ",".join(r["critic_failed"] or ["low score"])
            lines.append(f"- {r['variant']}: {r['reply']}  _(critic {r['critic_score']}, {mark})_")
        lines.append("")
    return "\n".join(lines) + "\n"


def write(results: dict, records: Sequence[dict], out: Path, title: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(results, records, title))
    with out.with_suffix(".jsonl").open("w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
