"""Reply metrics for `npc-sdk eval`: grounding, hallucination, persona identification, diversity, repetition.

grounding_rate      of the replies to scene questions, the share that name (scene_lexicon) at least one category
                    that is in the picture (terrain, pools or objects);
thing_grounding_rate the same, counting objects only (no terrain, pool or time of day): pictures of one
                    family share their terrain, so the shuffled-image baseline names it by chance; this one
                    asks whether the NPC saw the picture's own things;
hallucination_rate  of all replies, the share that name at least one category that is not in the picture;
persona_id_accuracy of all replies, the share whose role-encoder embedding is closest (cosine) to the v_R of
                    the persona that wrote it, among all personas evaluated;
distinct_2          unique word bigrams / all word bigrams, over all replies;
repetition_rate     the share of replies in which some word trigram occurs twice (scene_lexicon.repeats_itself).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..data.scene_lexicon import mentioned_categories, words
from ..model.vocabulary import OBJECTS

THING_NAMES = frozenset(o.name for o in OBJECTS)


def is_grounded(reply: str, present: Sequence[str]) -> bool:
    return bool(mentioned_categories(reply) & set(present))


def names_a_thing_present(reply: str, present: Sequence[str]) -> bool:
    return bool(mentioned_categories(reply) & set(present) & THING_NAMES)


def is_hallucinating(reply: str, present: Sequence[str]) -> bool:
    return bool(mentioned_categories(reply) - set(present))


def distinct_n(replies: Sequence[str], n: int = 2) -> float:
    grams = [tuple(w[i : i + n]) for w in map(words, replies) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def persona_predictions(reply_vectors: np.ndarray, persona_vectors: np.ndarray) -> np.ndarray:
    """Index of the closest persona (cosine) for each reply: [R, d] x [P, d] -> [R]."""
    a = reply_vectors / np.maximum(np.linalg.norm(reply_vectors, axis=1, keepdims=True), 1e-9)
    b = persona_vectors / np.maximum(np.linalg.norm(persona_vectors, axis=1, keepdims=True), 1e-9)
    return (a @ b.T).argmax(axis=1)


def rate(flags: Sequence[bool]) -> float:
    return round(sum(flags) / len(flags), 4) if flags else 0.0
