"""Dialogue targets for training: the base LM, told the scene in words, answers in character; a filter keeps the good.

Recipe (the teacher reads text, the student sees pixels):
  1. For each (persona, scene, player line) the teacher is the same SmolLM2 decoder with no prefix vectors. Its
     prompt is the persona's usual prompt with one extra note before the player's line:
     "(What <name> sees right now: <terrain> ground ..., you can see a slime and 2 coins. ...)".
  2. Up to `tries` samples per item (temperature 0.8, seeded by item and try); the first that passes is kept.
  3. The filter (`judge`) drops a reply that
       - breaks character: mentions being an AI, an assistant, a language model, the "user", or the note itself;
       - is under 4 words;
       - names an object category that is not in the scene (the evaluation's lexicon, scene_lexicon.py);
       - for a scene question: names no category that is in the scene.
  The yield (kept / items, and why the others were dropped) is written to dialogue_stats.json.

The student is trained on (persona prompt, [prefix from the screenshot], player line) -> kept reply, with no note.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from npc_sdk.personas.files import load_persona
from npc_sdk.personas.persona import Persona
from npc_sdk.runtime.events import Done
from npc_sdk.runtime.generation import GenerationConfig

from .scene_lexicon import mentioned_categories
from .scenes import Scene, describe

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
)
TALK_LINES: tuple[str, ...] = (
    "How are you today?",
    "Tell me about yourself.",
    "Any news from town?",
    "Where can I rest tonight?",
    "What do you do all day?",
    "Do you have any advice for me?",
)
SCENE_SHARE = 0.7  # of the items, how many ask about the scene
BREAKS_CHARACTER = re.compile(
    r"\b(AI|A\.I\.|assistant|language model|chatbot|the user|players?|sees? right now|seeing right now"
    r"|you can see|as an? (?:AI|model))\b",
    re.IGNORECASE,
)
STAGE_DIRECTION = re.compile(r"[()\[\]*:]|\n")  # narration, lists and echoed notes, not speech
REPO_PERSONAS = Path(__file__).resolve().parents[1] / "samples" / "personas"


@dataclass
class DialogueItem:
    persona_id: str
    scene: str  # scene file name
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
    scenes: Sequence[Scene], personas: Sequence[Persona], per_scene: int, seed: int
) -> list[DialogueItem]:
    """Which persona hears which line about which scene, the same for the same seed."""
    rng = random.Random(f"npc-dialogue:{seed}")
    items = []
    for scene in scenes:
        for persona in rng.sample(list(personas), min(per_scene, len(personas))):
            kind = "scene" if rng.random() < SCENE_SHARE else "talk"
            line = rng.choice(SCENE_LINES if kind == "scene" else TALK_LINES)
            items.append(DialogueItem(persona.id, scene.file, line, kind))
    return items


def scene_note(persona: Persona, scene: Scene) -> str:
    return (
        f"What {persona.name} sees right now: {describe(scene)}. "
        "When asked about the surroundings, say what you see."
    )


def with_note(persona: Persona, note: str) -> Persona:
    """The persona with a note told to the model before every player line (its own post-history kept)."""
    return replace(persona, post_history=(note + " " + persona.post_history).strip())


def judge(reply: str, scene: Scene, kind: str) -> str:
    """Why a teacher reply is dropped, or "" to keep it."""
    if BREAKS_CHARACTER.search(reply):
        return "breaks_character"
    if STAGE_DIRECTION.search(reply):
        return "stage_direction"
    if len(reply.split()) < 4:
        return "too_short"
    named = mentioned_categories(reply)
    if named - set(scene.categories):
        return "names_absent_thing"
    if kind == "scene" and not named:
        return "misses_the_scene"
    return ""


def trim_to_sentence(text: str) -> str:
    """A reply cut by max_tokens ends at its last full sentence (if it has one)."""
    text = text.strip()
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", text)]
    return text[: ends[-1]] if ends else text


def generate_dialogue(
    runtime,
    scenes: Sequence[Scene],
    personas: Sequence[Persona],
    out: Path,
    *,
    per_scene: int = 2,
    tries: int = 3,
    seed: int = 0,
    max_tokens: int = 48,
    log: Callable[[str], None] = print,
) -> dict:
    """Teacher replies for every planned item into out/dialogue.jsonl (resumable: done items are skipped)."""
    by_id = {p.id: p for p in personas}
    by_file = {s.file: s for s in scenes}
    items = plan_items(scenes, personas, per_scene, seed)
    path = out / "dialogue.jsonl"
    rejected_path = out / "dialogue_rejected.jsonl"  # items no try passed: a resumed run skips them too
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
    dropped: Counter[str] = Counter()
    started = time.perf_counter()
    processed = 0
    try:
        with path.open("a") as f, rejected_path.open("a") as rejected:
            for i, item in enumerate(items):
                processed = i + 1
                key = (item.persona_id, item.scene, item.line)
                if key in done_keys:
                    continue
                persona, scene = by_id[item.persona_id], by_file[item.scene]
                teacher = with_note(persona, scene_note(persona, scene))
                for t in range(tries):
                    config = GenerationConfig(
                        max_tokens=max_tokens, temperature=0.8, top_p=0.95, seed=seed * 1000 + i * 7 + t
                    )
                    done = runtime.reply(item.line, persona=teacher, config=config, use_prefix=False)
                    assert isinstance(done, Done)
                    reply = trim_to_sentence(done.text)
                    why = judge(reply, scene, item.kind)
                    if not why:
                        item.reply = reply
                        rec = asdict(item)
                        f.write(json.dumps(rec) + "\n")
                        f.flush()
                        kept.append(rec)
                        break
                    dropped[why] += 1
                else:
                    dropped["no_try_passed"] += 1
                    rejected.write(json.dumps({**asdict(item), "reply": reply, "why": why}) + "\n")
                    rejected.flush()
                if (i + 1) % 20 == 0:
                    rate = (i + 1) / (time.perf_counter() - started)
                    log(f"  teacher: {i + 1}/{len(items)} items, {len(kept)} kept ({rate:.2f} items/s)")
    finally:  # an interrupted run still says what it made (and resumes where it stopped)
        stats = {
            "items_planned": len(items),
            "items_processed": processed,
            "kept": len(kept),
            "yield": round(len(kept) / max(processed, 1), 3),
            "kept_scene": sum(1 for r in kept if r["kind"] == "scene"),
            "kept_talk": sum(1 for r in kept if r["kind"] == "talk"),
            "dropped_samples_by_reason": dict(dropped),
            "tries_per_item": tries,
            "note": "counts of dropped samples cover this run only (a resumed run starts them at zero)",
        }
        (out / "dialogue_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def read_dialogue(folder: Path) -> list[DialogueItem]:
    path = folder / "dialogue.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no dialogue yet; run `npc-sdk data dialogue --out {folder}` first")
    return [DialogueItem(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
