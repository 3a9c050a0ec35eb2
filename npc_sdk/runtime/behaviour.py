"""Behaviour: what shapes a turn beyond the decoder: scene facts, the sampler, actions, emotions and the critic.

The action decider, emotion classifier and critic all stand on the sentence encoder and are built on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

from ..personas.persona import Persona
from .actions import ActionDecider
from .critic import ReplyCritic
from .emotion import EmotionClassifier
from .events import Emotion
from .generation import GenerationConfig
from .graphs import ModelGraphs
from .sampling import TokenSampler, make_sampler
from .scene import SceneEntity, SceneFacts, check_entities, merge, scene_words

SentenceVectors = Callable[[Sequence[str]], np.ndarray]  # texts -> [N, 384]


class Behaviour:
    def __init__(self, graphs: ModelGraphs, sentence_vectors: SentenceVectors) -> None:
        self.graphs = graphs
        self.sentence_vectors = sentence_vectors
        # The server's scheduler thread and the service's emotion calls may both build a part first.
        self._lazy_lock = threading.Lock()
        self._action_decider: ActionDecider | None = None
        self._critic: ReplyCritic | None = None
        self._emotions: EmotionClassifier | None = None

    def scene_facts(self, tag_probs: np.ndarray | None, entities: Sequence[SceneEntity] = ()) -> SceneFacts:
        """What the NPC knows is in view: the head's tags past their thresholds and the game's entities."""
        tags = self.graphs.tags
        return merge(tag_probs if tags else None, tags, check_entities(entities))

    def sampler(
        self,
        persona: Persona,
        config: GenerationConfig,
        facts: SceneFacts | None = None,
        recent_replies: Sequence[str] = (),
        heard: Sequence[str] = (),
    ) -> TokenSampler:
        g = self.graphs
        words = scene_words(facts, g.tags, config) if facts is not None else None
        return make_sampler(
            g.tokenizer, persona, config, g.vocab_size, g.eos_id, words, recent_replies, heard
        )

    @property
    def action_decider(self) -> ActionDecider:
        """Built on first use (trains the request detector: a fraction of a second)."""
        with self._lazy_lock:
            if self._action_decider is None:
                self._action_decider = ActionDecider(self.sentence_vectors)
            return self._action_decider

    @property
    def critic(self) -> ReplyCritic:
        """The reply critic over the sentence encoder (best of N, eval)."""
        if self._critic is None:
            self._critic = ReplyCritic(self.sentence_vectors)
        return self._critic

    def _classifier(self) -> EmotionClassifier:
        with self._lazy_lock:
            if self._emotions is None:
                self._emotions = EmotionClassifier(self.sentence_vectors)
            return self._emotions

    def emotion(self, reply: str, line: str = "", line_vector: np.ndarray | None = None) -> Emotion:
        """The emotion a reply carries (one text-encoder pass; the line's too unless its vector is given)."""
        found = self._classifier().classify(reply, line, line_vector=line_vector) if reply.strip() else None
        return Emotion(found.label, found.intensity) if found else Emotion("neutral", 0.0)

    def emotion_scores(
        self, reply: str, line: str = "", line_vector: np.ndarray | None = None
    ) -> list[Emotion]:
        """Every emotion label with its share for this reply, most likely first (`emotion` is the first)."""
        if not reply.strip():
            return [Emotion("neutral", 0.0)]
        shares = self._classifier().shares(reply, line, line_vector=line_vector)
        return [Emotion(e.label, round(e.intensity, 3)) for e in shares]
