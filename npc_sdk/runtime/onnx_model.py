"""OnnxNpcModel: a model folder run with onnxruntime alone (no torch): the façade over its parts.

The parts, each in its own module: `graphs` (graphs.py: the sessions, embedding table, tokenizers and manifest
facts), `pool` (slot_pool.py: the KV cache's slots and the persona blocks' shared KV), `encoders` (encoders.py:
image, text and role encoders and the fusion) and `behaviour` (behaviour.py: scene facts, sampler, actions,
emotions, critic). A turn is prepared by turn.py's `prepare_turn`, the same for `stream` here and for
`Conversation`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..personas.persona import Persona
from ..personas.prompt import MAX_PERSONA_TOKENS, Prompt, Turn, persona_block
from .actions import ActionDecider
from .behaviour import Behaviour
from .critic import ReplyCritic
from .decoder_runner import DecoderRunner
from .encoders import Encoders
from .events import Done, Emotion, ReplyEvent
from .generation import GenerationConfig
from .graphs import ModelGraphs, providers_for
from .images import ImageInput
from .kv_cache import KVSnapshot
from .model_folder import ModelFolder
from .sampling import TokenSampler
from .scene import SceneEntity, SceneFacts
from .slot_decode import SlotSource, decode_turn
from .slot_pool import SlotPool
from .turn import prepare_turn
from .turn_model import DEFAULT_MAX_LEN

__all__ = ["DEFAULT_MAX_LEN", "TURN_RESERVE", "OnnxNpcModel", "SlotSource", "providers_for"]

# Positions per cache slot: persona + history + this turn + reply. Pages are committed only as positions are
# written (kv_cache._lazy_zeros) and attention reads only the filled part, so a long context costs memory only
# for the sessions that reach it: 46 KB a position for SmolLM2-135M (docs/personas.md, "Long cards").
TURN_RESERVE = 1024  # positions kept free of the persona block for history, this turn and the reply


def _part(part: str, name: str, *, settable: bool = False) -> Any:
    """A part's attribute read (and, for a tunable, set) through the façade, under the name callers have used."""

    def get(self: OnnxNpcModel) -> Any:
        return getattr(getattr(self, part), name)

    def set_(self: OnnxNpcModel, value: Any) -> None:
        setattr(getattr(self, part), name, value)

    return property(get, set_ if settable else None, doc=f"`{part}.{name}`")


# A turn's best-of-N candidates decode on spare slots and take only what is free, so a model opened with one slot
# would quietly answer with one candidate where the defaults promise 8. The KV buffers are zeroed lazily: a slot
# that is never written costs no resident memory.
DEFAULT_SLOTS = GenerationConfig().candidates


class OnnxNpcModel:
    """The parts composed, and the one API callers use: slots, encoders, behaviour and a stateless turn."""

    def __init__(
        self,
        folder: ModelFolder,
        *,
        device: str = "cpu",
        threads: int | None = None,
        slots: int = DEFAULT_SLOTS,
        max_len: int = DEFAULT_MAX_LEN,
        prefill_graph: bool = True,
    ) -> None:
        """`slots`: sequences the cache holds at once; a turn's best-of-N candidates need spare ones beside its own.
        `prefill_graph` False leaves decoder_prefill.onnx unloaded (~190 MB less RSS, prefills ~2x slower)."""
        self.folder = folder
        self.graphs = ModelGraphs(folder, device=device, threads=threads, prefill_graph=prefill_graph)
        self.pool = SlotPool(self.graphs.new_cache(slots, max_len))
        self.runner = self.graphs.runner(self.pool.cache)
        self.encoders = Encoders(self.graphs)
        self.behaviour = Behaviour(self.graphs, self.encoders.sentence_vectors)
        # A long card is trimmed to this (personas/prompt.py:fit_persona) rather than refused.
        self.persona_tokens = max(256, min(MAX_PERSONA_TOKENS, self.cache.max_len - TURN_RESERVE))

    # ---- the parts' attributes, under the names callers have always used -----------------------------------
    image_session = _part("graphs", "image_session")
    text_session = _part("graphs", "text_session")
    fusion_session = _part("graphs", "fusion_session")
    decoder_session = _part("graphs", "decoder_session")
    prefill_session = _part("graphs", "prefill_session")
    table = _part("graphs", "table")  # [vocab, hidden], memory-mapped
    tokenizer = _part("graphs", "tokenizer")  # the decoder's
    text_tokenizer = _part("graphs", "text_tokenizer")  # the sentence encoder's
    chat_format = _part("graphs", "chat_format")
    decoder_name = _part("graphs", "decoder_name")
    decoder_given = _part("graphs", "decoder_given")
    eos_id = _part("graphs", "eos_id")
    vocab_size = _part("graphs", "vocab_size")
    hidden_size = _part("graphs", "hidden_size")
    fusion_config = _part("graphs", "fusion_config")
    fusion_trained = _part("graphs", "fusion_trained")
    tags = _part("graphs", "tags")
    cache = _part("pool", "cache")
    _free_slots = _part("pool", "free")
    persona_kv = _part("pool", "persona_kv")
    persona_kv_entries = _part("pool", "persona_kv_entries", settable=True)
    persona_kv_bytes = _part("pool", "persona_kv_bytes", settable=True)

    @classmethod
    def load(cls, path: str | Path, *, verify: bool = True, **kwargs) -> OnnxNpcModel:
        """Open a model folder (every file checked against the manifest's sha256 unless `verify` is False)."""
        return cls(ModelFolder.open(path, verify=verify), **kwargs)

    def describe(self) -> str:
        fusion = "trained" if self.fusion_trained else "untrained (gate 0, prefix vectors are zero)"
        return f"onnxruntime {self.folder.precision} model at {self.folder.path}; fusion weights: {fusion}"

    def separate_runner(self, slots: int = 1, *, prefill_graph: bool = True) -> DecoderRunner:
        """A runner over new KV buffers with this model's graphs, for measuring and checking beside the served
        slots; `prefill_graph` False runs every call on decoder.onnx."""
        return self.graphs.runner(
            self.graphs.new_cache(slots, self.cache.max_len), prefill_graph=prefill_graph
        )

    @property
    def context_length(self) -> int:
        """Positions a prompt and its reply may take together: a cache slot's length."""
        return self.cache.max_len

    # ---- slots and the persona KV (pool) -----------------------------------------------------------------
    def acquire_slot(self) -> int:
        return self.pool.acquire_slot()

    def try_acquire_slots(self, n: int) -> list[int]:
        """Up to `n` free slots (fewer, or none, when the pool is short): best of N takes what is spare."""
        return self.pool.try_acquire_slots(n)

    def release_slot(self, slot: int) -> None:
        self.pool.release_slot(slot)

    @property
    def free_slots(self) -> int:
        return self.pool.free_slots

    def cached_persona_kv(self, block: Sequence[int]) -> KVSnapshot | None:
        return self.pool.cached_persona_kv(block)

    def remember_persona_kv(self, block: Sequence[int], slot: int) -> bool:
        return self.pool.remember_persona_kv(block, slot)

    def persona_block(self, persona: Persona) -> list[int]:
        """The tokens every prompt of `persona` starts with, in this decoder's chat format (fitted to the budget)."""
        return persona_block(self.tokenizer, persona, self.persona_tokens, self.chat_format)

    def usable_history(self, turns: Sequence[Turn]) -> list[Turn]:
        """Stored turns as this model can replay them: fusion vectors kept only where this decoder's trained
        projector could have made them. A session stored under another decoder (a deployment that switched
        models) keeps every word of its history; the vectors, which belong to the old decoder, are dropped."""
        keep = self.fusion_trained
        return [
            t
            if t.prefix is None or (keep and t.prefix.shape[-1] == self.hidden_size)
            else Turn(t.user, t.reply, None, t.context)
            for t in turns
        ]

    # ---- encoders and fusion (encoders) ------------------------------------------------------------------
    def embed_ids(self, ids: Sequence[int]) -> np.ndarray:
        return self.encoders.embed_ids(ids)

    def embed(self, prompt: Prompt) -> np.ndarray:
        return self.encoders.embed(prompt)

    def encode_image(self, image: ImageInput) -> tuple[np.ndarray, np.ndarray]:
        """v_I [1, 112, 1280] and v_mid [1, 448, 112]."""
        return self.encoders.encode_image(image)

    def encode_text(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """v_T [1, L, 384] and its mask [1, L]."""
        return self.encoders.encode_text(text)

    def encode_role(self, persona: Persona) -> np.ndarray:
        """v_R [1, 384], once per distinct persona text."""
        return self.encoders.encode_role(persona)

    def sentence_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """[N, 384] pooled role-encoder vectors: the space v_R lives in (persona identification uses it)."""
        return self.encoders.sentence_vectors(texts)

    def fuse(self, text: str, persona: Persona, screenshot: ImageInput | None = None) -> np.ndarray | None:
        """The K prefix vectors [K, hidden] for this turn."""
        return self.see(text, persona, screenshot)[0]

    def see(
        self, text: str, persona: Persona, screenshot: ImageInput | None = None
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The K prefix vectors [K, hidden], and the head's probability per tag [n_tags] (None without a picture)."""
        return self.encoders.see(text, persona, screenshot)

    # ---- behaviour ---------------------------------------------------------------------------------------
    def scene_facts(self, tag_probs: np.ndarray | None, entities: Sequence[SceneEntity] = ()) -> SceneFacts:
        """What the NPC knows is in view: the head's tags past their thresholds and the game's entities."""
        return self.behaviour.scene_facts(tag_probs, entities)

    def sampler(
        self,
        persona: Persona,
        config: GenerationConfig,
        facts: SceneFacts | None = None,
        recent_replies: Sequence[str] = (),
        heard: Sequence[str] = (),
    ) -> TokenSampler:
        return self.behaviour.sampler(persona, config, facts, recent_replies, heard)

    @property
    def action_decider(self) -> ActionDecider:
        """Built on first use (trains the request detector: a fraction of a second)."""
        return self.behaviour.action_decider

    @property
    def critic(self) -> ReplyCritic:
        """The reply critic over this model's sentence encoder (best of N, eval)."""
        return self.behaviour.critic

    def emotion(self, reply: str, line: str = "", line_vector: np.ndarray | None = None) -> Emotion:
        """The emotion a reply carries (one text-encoder pass; the line's too unless its vector is given)."""
        return self.behaviour.emotion(reply, line, line_vector)

    def emotion_scores(
        self, reply: str, line: str = "", line_vector: np.ndarray | None = None
    ) -> list[Emotion]:
        """Every emotion label with its share, most likely first (one text-encoder pass, as `emotion`)."""
        return self.behaviour.emotion_scores(reply, line, line_vector)

    # ---- one stateless turn (the reference's API) ----------------------------------------------------------
    def stream(
        self,
        text: str,
        *,
        persona: Persona,
        history: Sequence[Turn] = (),
        screenshot: ImageInput | None = None,
        scene: Sequence[SceneEntity] = (),
        config: GenerationConfig | None = None,
        use_prefix: bool = True,
        prefix: np.ndarray | None = None,
        state: Mapping[str, str] | None = None,
        explain: bool = False,
    ) -> Iterator[ReplyEvent]:
        """A turn from an empty cache; for dialogues that reuse their KV state, use `Conversation`.

        Prepared as a conversation's turn is (turn.py): `scene` lists what the game says is in view (with a
        screenshot, the image head's tags join it), `state` is the game's facts; the action the line asks for
        comes before the first delta. `config.candidates` > 1 decodes best of N on spare slots. `explain` fills
        `Done.explanation` (no emotion is computed on this path, so it has no emotion scores).
        """
        turn = prepare_turn(
            self,
            persona,
            history,
            text,
            screenshot=screenshot,
            scene=scene,
            config=config,
            use_prefix=use_prefix,
            prefix=prefix,
            state=state,
            explain=explain,
        )
        slot = self.acquire_slot()
        try:
            if turn.action is not None:
                yield turn.action
            for event in decode_turn(self, slot, turn):
                if isinstance(event, Done) and turn.explanation is not None:
                    event = replace(event, explanation=turn.explanation)
                yield event
        finally:
            self.release_slot(slot)

    def reply(self, text: str, **kwargs) -> Done:
        *_, done = self.stream(text, **kwargs)
        assert isinstance(done, Done)
        return done
