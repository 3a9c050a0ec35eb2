"""TurnModel: what a model offers for a turn to be prepared on it (turn.py); the onnxruntime model and the torch
reference (export/model/reference.py) both implement it, so every path renders the same prompt and makes the same
decisions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from tokenizers import Tokenizer

from ..personas.chat_format import ChatFormat
from ..personas.persona import Persona
from ..personas.prompt import Prompt
from .actions import ActionDecider
from .critic import ReplyCritic
from .generation import GenerationConfig
from .images import ImageInput
from .sampling import TokenSampler
from .scene import SceneEntity, SceneFacts

# positions a session's context holds by default (the runtime's KV slots and the reference's window alike)
DEFAULT_MAX_LEN = 4096


@runtime_checkable
class TurnModel(Protocol):
    @property
    def tokenizer(self) -> Tokenizer:
        """The decoder's tokenizer."""
        ...

    @property
    def chat_format(self) -> ChatFormat:
        """The decoder's message pieces."""
        ...

    @property
    def eos_id(self) -> int: ...

    @property
    def persona_tokens(self) -> int:
        """The persona block's budget: a longer card is trimmed to it (personas/prompt.py:fit_persona)."""
        ...

    @property
    def context_length(self) -> int:
        """Positions a prompt and its reply may take together: older turns leave the prompt beyond it."""
        ...

    @property
    def action_decider(self) -> ActionDecider: ...

    @property
    def critic(self) -> ReplyCritic:
        """Chooses among best-of-N candidates."""
        ...

    def see(
        self, text: str, persona: Persona, screenshot: ImageInput | None = None
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The turn's K prefix vectors [K, hidden] (None: none reach the decoder) and the image head's probability
        per tag (None without a picture)."""
        ...

    def scene_facts(self, tag_probs: np.ndarray | None, entities: Sequence[SceneEntity] = ()) -> SceneFacts:
        """What is in view: the head's tags past their thresholds, and the game's entities (checked)."""
        ...

    def sentence_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """[N, 384] sentence vectors: what the action decision and the critic compare."""
        ...

    def sampler(
        self,
        persona: Persona,
        config: GenerationConfig,
        facts: SceneFacts | None = None,
        recent_replies: Sequence[str] = (),
        heard: Sequence[str] = (),
    ) -> TokenSampler: ...

    def embed(self, prompt: Prompt) -> np.ndarray:
        """[T, hidden] inputs_embeds of `prompt`."""
        ...
