"""Dialogue targets for training: the decoder, told the true tags, answers in character; a filter keeps the good.

Recipe (the teacher reads the true labels; the student will see pixels):
  1. Items: (persona, picture, player line), a scene question for 70% of them, ordinary talk for the rest.
  2. The teacher is the runtime itself (int4 model folder, no prefix vectors), prompted the way a turn with
     engine scene facts is: the persona's system prompt with its example dialogue (few-shot; the sample
     personas each carry one scene example), then "(In view: ...)" listing the picture's true tags, then the
     line. It decodes under the scene-word bias (the true tags' words up, absent categories' words down) and the
     persona's role words. `candidates` samples per item decode together in one batch (temperature 0.7).
  3. The filter (`judge`) drops a reply that
       - breaks character: mentions being an AI, an assistant, a language model, the "user", or the note itself;
       - narrates (brackets, asterisks, colons, line breaks) or is under 4 words or repeats a word trigram, or a
         word twice in a row ("grass grass"), or lists more than `MAX_NAMED` categories (a tag list, not speech);
       - names an object category that is not in the picture (the evaluation's lexicon, scene_lexicon.py);
       - for a scene question: names no category that is in the picture;
       - is not fluent: the decoder's own mean log-probability of the reply's tokens, before any bias, is below
         `MIN_FLUENCY` (the bias can force words the model finds unlikely; this keeps only what it could say).
  4. Of the candidates that pass, the one with the best fluency + `PERSONA_WEIGHT` x persona margin is kept: the
     margin is how much nearer its role-encoder vector is to its own persona than to the nearest other one (the
     persona-identification metric in the data itself).
The yield (kept / items, and why the others were dropped) is written to dialogue_stats.json.

The student is trained on (persona prompt, [prefix from the screenshot], note of the true tags, line) -> kept
reply; at run time the note lists what the head saw (or what the game says) instead.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from npc_sdk.personas.files import load_persona
from npc_sdk.personas.persona import Persona
from npc_sdk.runtime.batch import BatchGenerator
from npc_sdk.runtime.conversation import Conversation
from npc_sdk.runtime.generation import GenerationConfig
from npc_sdk.runtime.scene import SceneEntity

from .scene_lexicon import mentioned_categories, repeats_itself

# Player lines: questions about what is on screen, and ordinary talk that needs no picture.
SCENE_LINES: tuple[str, ...] = (
    "What's that over there?",
    "Is it safe ahead?",
    "What do you see around here?",
    "Anything worth grabbing nearby?",
    "What should I watch out for here?",
    "Describe this place for me.",
    "What's in front of us?",
    "Look over there. What is it?",
    "What do you make of this?",
    "Is there anything useful here?",
    "What is that thing?",
    "Should I go that way?",
)
TALK_LINES: tuple[str, ...] = (
    "How are you today?",
    "Tell me about yourself.",
    "Any news from town?",
    "Where can I rest tonight?",
    "What do you do all day?",
    "Do you have any advice for me?",
    "Thanks for your help.",
    "What do you think of the weather?",
)
SCENE_SHARE = 0.7  # of the items, how many ask about the scene
MAX_NAMED = 3  # categories a kept reply may name
MIN_FLUENCY = -2.8  # mean log-probability per token, unbiased, below which a reply is word salad
PERSONA_WEIGHT = 3.0  # persona margin's weight against fluency when picking among candidates
TEACHER_SCENE_WEIGHT = 2.5  # the teacher's scene-word bias: enough to name things, not enough to list them
DOUBLED_WORD = re.compile(r"\b(\w+)\W+\1\b", re.IGNORECASE)
BREAKS_CHARACTER = re.compile(
    r"\b(AI|A\.I\.|assistant|language model|chatbot|the user|players?|in view|sees? right now|seeing right now"
    r"|you can see|as an? (?:AI|model))\b",
    re.IGNORECASE,
)
STAGE_DIRECTION = re.compile(r"[()\[\]*:]|\n")  # narration, lists and echoed notes, not speech
REPO_PERSONAS = Path(__file__).resolve().parents[2] / "samples" / "personas"


@dataclass
class DialogueItem:
    persona_id: str
    scene: str  # picture file name (images/ of the dataset)
    line: str
    kind: str  # "scene" (asks about what is on screen) or "talk"
    reply: str = ""


def training_personas(folder: Path = REPO_PERSONAS) -> list[Persona]:
    """Every persona file in the folder that is a character of its own (bases that others extend are skipped)."""
    personas = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".toml", ".json", ".png") or path.stem == "villager":
            continue
        personas.append(load_persona(path))
    return personas


def plan_items(
    scenes: Sequence[str], personas: Sequence[Persona], per_scene: int, seed: int
) -> list[DialogueItem]:
    """Which persona hears which line about which picture, the same for the same seed."""
    rng = random.Random(f"npc-dialogue:{seed}")
    items = []
    for scene in scenes:
        for persona in rng.sample(list(personas), min(per_scene, len(personas))):
            kind = "scene" if rng.random() < SCENE_SHARE else "talk"
            line = rng.choice(SCENE_LINES if kind == "scene" else TALK_LINES)
            items.append(DialogueItem(persona.id, scene, line, kind))
    return items


def judge(reply: str, present: Sequence[str], kind: str) -> str:
    """Why a teacher reply is dropped, or "" to keep it. `present`: the categories in the picture."""
    if BREAKS_CHARACTER.search(reply):
        return "breaks_character"
    if STAGE_DIRECTION.search(reply):
        return "stage_direction"
    if len(reply.split()) < 4:
        return "too_short"
    if repeats_itself(reply) or DOUBLED_WORD.search(reply):
        return "repeats_itself"
    named = mentioned_categories(reply)
    if named - set(present):
        return "names_absent_thing"
    if kind == "scene" and not named:
        return "misses_the_scene"
    if len(named) > MAX_NAMED:
        return "lists_things"
    return ""


class FluencySampler:
    """Wraps a reply's sampler and keeps the decoder's own log-probability of each token it picks (before the
    bias, the penalty and the temperature): how likely the model itself found the reply."""

    def __init__(self, sampler) -> None:
        self.sampler = sampler
        self.banned = sampler.banned
        self.logprobs: list[float] = []

    def __call__(self, logits: np.ndarray, generated: Sequence[int] = ()) -> int:
        token = self.sampler(logits, generated)
        top = float(logits.max())
        self.logprobs.append(float(logits[token]) - top - float(np.log(np.exp(logits - top).sum())))
        return token

    @property
    def fluency(self) -> float:
        return float(np.mean(self.logprobs)) if self.logprobs else -99.0


def trim_to_sentence(text: str) -> str:
    """A reply cut by max_tokens ends at its last full sentence (if it has one)."""
    text = text.strip()
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", text)]
    return text[: ends[-1]] if ends else text


def decode_together(
    runtime, jobs: Sequence[tuple[Persona, str, list[SceneEntity], GenerationConfig]]
) -> list[tuple[str, float]]:
    """(reply, fluency) for several stateless turns decoded in one batch (one cache slot each; persona KV shared)."""
    batch = BatchGenerator(runtime)
    running = []
    try:
        for persona, line, entities, config in jobs:
            conv = Conversation(runtime, persona)
            turn = conv.prepare(line, scene=entities, config=config, use_prefix=False)
            turn.state.sampler = FluencySampler(turn.state.sampler)
            assert conv.slot is not None
            batch.add(conv.slot, turn.embeds, turn.state)
            running.append((conv, turn))
        while batch.members:
            batch.step()
        replies = []
        for conv, turn in running:
            done = turn.state.done()
            conv.finish(turn, done)  # remembers the persona's KV state for the next item
            replies.append((done.text, turn.state.sampler.fluency))
        return replies
    finally:
        for conv, _ in running:
            conv.close()


def generate_dialogue(
    runtime,
    scenes: dict[str, list[str]],
    personas: Sequence[Persona],
    out: Path,
    *,
    per_scene: int = 2,
    candidates: int = 3,
    seed: int = 0,
    max_tokens: int = 40,
    items_at_once: int = 4,
    log: Callable[[str], None] = print,
) -> dict:
    """Teacher replies for every planned item into out/dialogue.jsonl (resumable: done items are skipped).

    `scenes` maps picture file name -> its tags. `runtime` needs items_at_once x candidates cache slots.
    """
    by_id = {p.id: p for p in personas}
    items = plan_items(sorted(scenes), personas, per_scene, seed)
    path = out / "dialogue.jsonl"
    rejected_path = out / "dialogue_rejected.jsonl"  # items no candidate passed: a resumed run skips them too
    done_keys: set[tuple[str, str, str]] = set()
    kept: list[dict] = []
    for file, keep in ((path, True), (rejected_path, False)):
        if file.is_file():  # resume after an interruption
            for line in file.read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    done_keys.add((rec["persona_id"], rec["scene"], rec["line"]))
                    if keep:
                        kept.append(rec)
    persona_vecs = np.concatenate([runtime.encode_role(p) for p in personas])
    persona_vecs /= np.linalg.norm(persona_vecs, axis=1, keepdims=True)
    persona_index = {p.id: i for i, p in enumerate(personas)}
    dropped: Counter[str] = Counter()
    started = time.perf_counter()
    todo = [(i, it) for i, it in enumerate(items) if (it.persona_id, it.scene, it.line) not in done_keys]
    processed = len(items) - len(todo)
    try:
        with path.open("a") as f, rejected_path.open("a") as rejected:
            for start in range(0, len(todo), items_at_once):
                group = todo[start : start + items_at_once]
                jobs = []
                for i, item in group:
                    tags = scenes[item.scene]
                    entities = [SceneEntity(t) for t in tags]
                    for c in range(candidates):
                        config = GenerationConfig(
                            max_tokens=max_tokens,
                            temperature=0.7,
                            top_p=0.95,
                            seed=seed * 100003 + i * 7 + c,
                            scene_word_weight=TEACHER_SCENE_WEIGHT,
                        )
                        jobs.append((by_id[item.persona_id], item.line, entities, config))
                decoded = decode_together(runtime, jobs)
                replies = [trim_to_sentence(r) for r, _ in decoded]
                fluency = [f for _, f in decoded]
                vecs = runtime.sentence_vectors([r or "..." for r in replies])
                vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-9)
                sims = vecs @ persona_vecs.T  # [candidates, personas]
                for k, (_i, item) in enumerate(group):
                    present = [t for t in scenes[item.scene]]
                    best, best_score, best_margin, best_fluency, why = None, -99.0, 0.0, 0.0, ""
                    for c in range(candidates):
                        j = k * candidates + c
                        why = judge(replies[j], present, item.kind)
                        if not why and fluency[j] < MIN_FLUENCY:
                            why = "not_fluent"
                        if why:
                            dropped[why] += 1
                            continue
                        own = persona_index[item.persona_id]
                        margin = float(sims[j, own] - np.delete(sims[j], own).max())
                        score = fluency[j] + PERSONA_WEIGHT * margin
                        if score > best_score:
                            best, best_score, best_margin, best_fluency = (
                                replies[j],
                                score,
                                margin,
                                fluency[j],
                            )
                    if best is not None:
                        item.reply = best
                        rec = {
                            **asdict(item),
                            "persona_margin": round(best_margin, 4),
                            "fluency": round(best_fluency, 4),
                        }
                        f.write(json.dumps(rec) + "\n")
                        kept.append(rec)
                    else:
                        dropped["no_candidate_passed"] += 1
                        last = replies[k * candidates + candidates - 1]
                        rejected.write(json.dumps({**asdict(item), "reply": last, "why": why}) + "\n")
                processed += len(group)
                f.flush()
                rejected.flush()
                if (start // items_at_once + 1) % 25 == 0:
                    rate = (start + len(group)) / (time.perf_counter() - started)
                    log(f"  teacher: {processed}/{len(items)} items, {len(kept)} kept ({rate:.2f} items/s)")
    finally:  # an interrupted run still says what it made (and resumes where it stopped)
        stats = {
            "items_planned": len(items),
            "items_processed": processed,
            "kept": len(kept),
            "yield": round(len(kept) / max(processed, 1), 3),
            "kept_scene": sum(1 for r in kept if r["kind"] == "scene"),
            "kept_talk": sum(1 for r in kept if r["kind"] == "talk"),
            "candidates_per_item": candidates,
            "dropped_candidates_by_reason": dict(dropped),
            "note": "counts of dropped candidates cover this run only (a resumed run starts them at zero)",
        }
        (out / "dialogue_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def read_dialogue(folder: Path) -> list[DialogueItem]:
    path = folder / "dialogue.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no dialogue yet; run `npc-sdk data dialogue --out {folder}` first")
    keys = {"persona_id", "scene", "line", "kind", "reply"}
    return [
        DialogueItem(**{k: v for k, v in json.loads(line).items() if k in keys})
        for line in path.read_text().splitlines()
        if line.strip()
    ]
