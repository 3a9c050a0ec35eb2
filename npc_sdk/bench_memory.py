"""`npc-sdk bench --memory`: does an NPC remember what the player said once a long session has rolled past it?

Fifty facts a player tells about themselves (`assets/eval/memory_facts.jsonl`: what is said, what is asked later,
the word a right answer holds) are planted in five dialogues of 200 turns, ten each, in the first 120 turns; the
rest is small talk. At the end each fact is asked about, as the 201st line:

- recall: the fact's exchange is in the prompt (the memory note of runtime/memory.py), counted over the facts the
  history window no longer shows (the window holds ~100 turns of 4,096 positions);
- stated: the reply holds the answer word (greedy, one sentence), with the model at hand;
- the same with `memory_budget_tokens = 0`, the baseline of a window alone;
- cost: recall over 10,000 exchanges (one matrix-vector product), and the sentence vector each new turn needs.

Across sessions (a session with a player_id keeps what the player says about themselves, runtime/player_facts.py):
each fact's line goes through the extraction ("kept": it was recognised as a fact about the player), then a fresh
session of the same NPC with the kept facts of its dialogue as memories is asked about it ("next-session recall":
the fact is in the prompt; "stated": the reply holds the answer word). The store's cost: one turn's refresh and
recall with 10,000 memories for one NPC and player in the SQLite store (the stamp query when nothing changed, plus
the matrix-vector product).
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np

from .demo import DEMO_PERSONA
from .personas.prompt import Turn
from .runtime.conversation import Conversation
from .runtime.generation import GenerationConfig
from .runtime.memory import KnownMemories, Memory, TurnMemory
from .runtime.onnx_model import OnnxNpcModel
from .runtime.player_facts import player_facts

TURNS = 200
FACTS_PER_DIALOGUE = 10
PLANTED_BEFORE = 120
_TOPICS = ("the weather", "the harvest", "the river fish", "the mine carts", "the market", "the old bridge",
           "the town bell", "the winter snow", "the road north", "the price of iron", "the wolves")  # fmt: skip
_OPENERS = ("What do you make of {t} these days?", "Any news about {t}?", "Heard anything about {t}?",
            "How is {t} this week?", "Do you worry about {t}?")  # fmt: skip
_ANSWERS = ("Same as ever, {t} keeps everyone talking.", "Nothing new about {t}, traveller.",
            "Ask me again tomorrow about {t}.", "I try not to think about {t} too much.")  # fmt: skip


def read_facts() -> list[dict]:
    text = resources.files("npc_sdk").joinpath("assets/eval/memory_facts.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _small_talk(rng: random.Random) -> Turn:
    topic = rng.choice(_TOPICS)
    return Turn(rng.choice(_OPENERS).format(t=topic), rng.choice(_ANSWERS).format(t=topic))


def _planted_dialogue(facts: list[dict], rng: random.Random) -> list[Turn]:
    history = [_small_talk(rng) for _ in range(TURNS - len(facts))]
    for fact, at in zip(facts, sorted(rng.sample(range(PLANTED_BEFORE), len(facts))), strict=True):
        history.insert(at, Turn(fact["said"], "I'll remember that."))
    return history


def recall_cost_ms(memories: int = 10_000, queries: int = 200, dim: int = 384) -> float:
    """Median time of one recall over `memories` exchanges (vectors made up: the cost does not depend on them)."""
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((memories, dim)).astype(np.float32)
    memory = TurnMemory(lambda texts: vectors[: len(texts)])
    memory.sync([Turn(f"line {i}", "reply") for i in range(memories)])
    times = []
    for _ in range(queries):
        query = rng.standard_normal(dim).astype(np.float32)
        started = time.perf_counter()
        memory.recall(query, memories, 200, len)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def next_session(model: OnnxNpcModel, facts: list[dict], greedy: GenerationConfig) -> tuple[dict, list[dict]]:
    """Facts kept from one session recalled in the next (see the module docstring)."""
    rows = []
    for d in range(0, len(facts), FACTS_PER_DIALOGUE):
        group = facts[d : d + FACTS_PER_DIALOGUE]
        kept = [
            Memory(f, DEMO_PERSONA.name, player_id="p", source="player")
            for x in group
            for f in player_facts(x["said"])
        ]
        known = KnownMemories(model.sentence_vectors)
        known.set(kept)
        for fact in group:
            with Conversation(model, DEMO_PERSONA, known=known) as conv:
                done = conv.reply(fact["asked"], config=greedy, use_prefix=False)
                context = conv.history[-1].context
            rows.append(
                {
                    "asked": fact["asked"],
                    "answer": fact["answer"],
                    "kept": bool(player_facts(fact["said"])),
                    "recalled": any(f in context for f in player_facts(fact["said"])),
                    "stated": fact["answer"].lower() in done.text.lower(),
                    "reply": done.text,
                }
            )
    n = max(len(rows), 1)
    return (
        {
            "facts_kept_by_extraction": round(sum(r["kept"] for r in rows) / n, 3),
            "next_session_recall": round(sum(r["recalled"] for r in rows) / n, 3),
            "next_session_reply_states_fact": round(sum(r["stated"] for r in rows) / n, 3),
        },
        rows,
    )


def bench_memory(folder: Path, seed: int = 1, log: Callable[[str], None] = print) -> dict:
    model = OnnxNpcModel.load(folder, slots=2)
    facts = read_facts()
    rng = random.Random(seed)
    rng.shuffle(facts)
    greedy = GenerationConfig(temperature=0.0, max_tokens=40, max_sentences=1)
    figures: dict = {"facts": len(facts), "turns_per_dialogue": TURNS}
    rows = []
    for budget in (DEMO_PERSONA.memory_budget_tokens, 0):
        persona = replace(DEMO_PERSONA, memory_budget_tokens=budget)
        for d in range(0, len(facts), FACTS_PER_DIALOGUE):
            group = facts[d : d + FACTS_PER_DIALOGUE]
            history = _planted_dialogue(group, random.Random(seed * 1000 + d))
            conv = Conversation(model, persona, list(history))
            try:
                for fact in group:
                    done = conv.reply(fact["asked"], config=greedy, use_prefix=False)
                    asked = conv.history.pop()  # the question is not kept: every fact is asked after turn 200
                    planted = next(i for i, t in enumerate(history) if t.user == fact["said"])
                    rows.append(
                        {
                            "budget": budget,
                            "asked": fact["asked"],
                            "answer": fact["answer"],
                            "out_of_window": planted < conv.window_start,
                            "recalled": fact["said"] in asked.context,
                            "stated": fact["answer"].lower() in done.text.lower(),
                            "reply": done.text,
                        }
                    )
                log(f"  memory budget {budget}: {len(rows)} of {2 * len(facts)} facts asked")
            finally:
                conv.close()
    for budget in (DEMO_PERSONA.memory_budget_tokens, 0):
        out = [r for r in rows if r["budget"] == budget and r["out_of_window"]]
        key = f"budget{budget}"
        figures[f"{key}_facts_out_of_window"] = len(out)
        figures[f"{key}_recall"] = round(sum(r["recalled"] for r in out) / max(len(out), 1), 3)
        figures[f"{key}_reply_states_fact"] = round(sum(r["stated"] for r in out) / max(len(out), 1), 3)
    log("  the next session: facts kept from the first")
    across, across_rows = next_session(model, facts, greedy)
    figures.update(across)
    figures["recall_ms_at_10000_memories"] = round(recall_cost_ms(), 3)
    started = time.perf_counter()
    for fact in facts[:20]:
        model.sentence_vectors([f"{fact['said']}\nI'll remember that."])
    figures["turn_vector_ms"] = round((time.perf_counter() - started) * 1000 / 20, 2)
    figures["replies"] = rows
    figures["next_session_replies"] = across_rows
    return figures
