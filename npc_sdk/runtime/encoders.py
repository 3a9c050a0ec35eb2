"""Encoders: what a turn's line, picture and persona become: embeddings, encoder states and the fusion's prefix."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from ..personas.persona import Persona
from ..personas.prompt import Prompt, check_text
from .graphs import ModelGraphs
from .images import ImageInput, preprocess
from .text_tokens import ROLE_MAX_TOKENS, TEXT_MAX_TOKENS, encode_batch

IMAGE_CACHE_SIZE = 8  # pictures (~0.8 MB of encoder states each)


class Encoders:
    def __init__(self, graphs: ModelGraphs) -> None:
        self.graphs = graphs
        self._role_cache: dict[str, np.ndarray] = {}  # persona role text -> v_R
        # the encoder states of the last few pictures, by a digest of their pixels: a game that sends the same view
        # again (a paused dialogue screen, a regenerated reply, best of N in a studio) skips the image encoder
        self._image_cache: OrderedDict[bytes, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        # the pooled vector of the last line `encode_text` ran: the same graph call gives it, and the turn's action
        # decision and recall ask for that line's vector next (one text-encoder call a turn instead of two)
        self._last_line: tuple[str, np.ndarray] | None = None

    def embed_ids(self, ids: Sequence[int]) -> np.ndarray:
        return np.asarray(self.graphs.table[np.asarray(ids, dtype=np.int64)], dtype=np.float32)

    def embed(self, prompt: Prompt) -> np.ndarray:
        return prompt.embed(self.graphs.table)

    def encode_image(self, image: ImageInput) -> tuple[np.ndarray, np.ndarray]:
        """v_I [1, 112, 1280] and v_mid [1, 448, 112]."""
        pixels = preprocess(image)
        key = hashlib.blake2b(pixels.tobytes(), digest_size=16).digest()
        hit = self._image_cache.get(key)
        if hit is not None:
            self._image_cache.move_to_end(key)
            return hit
        v_I, v_mid = self.graphs.image_session.run(["v_I", "v_mid"], {"pixels": pixels})
        self._image_cache[key] = (v_I, v_mid)
        while len(self._image_cache) > IMAGE_CACHE_SIZE:
            self._image_cache.popitem(last=False)
        return v_I, v_mid

    def forget_images(self) -> None:
        """Empty the picture cache (benchmarks time the encoder on a picture it has not seen)."""
        self._image_cache.clear()

    def encode_text(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """v_T [1, L, 384] and its mask [1, L]."""
        ids, mask = encode_batch(self.graphs.text_tokenizer, [check_text(text)], TEXT_MAX_TOKENS)
        feeds = {"input_ids": ids, "attention_mask": mask}
        states, pooled = self.graphs.text_session.run(["token_states", "pooled"], feeds)
        # a line cut to TEXT_MAX_TOKENS is not what sentence_vectors (ROLE_MAX_TOKENS) would encode
        self._last_line = (text, pooled) if ids.shape[1] < TEXT_MAX_TOKENS else None
        return states, mask

    def encode_role(self, persona: Persona) -> np.ndarray:
        """v_R [1, 384], once per distinct persona text."""
        key = persona.role_text()
        if key not in self._role_cache:
            self._role_cache[key] = self.sentence_vectors([key])
        return self._role_cache[key]

    def sentence_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """[N, 384] pooled role-encoder vectors: the space v_R lives in (persona identification uses it)."""
        last = self._last_line  # one read: another thread may encode a line meanwhile
        if len(texts) == 1 and last is not None and last[0] == texts[0]:
            return last[1].copy()
        ids, mask = encode_batch(self.graphs.text_tokenizer, list(texts), ROLE_MAX_TOKENS)
        return self.graphs.text_session.run(["pooled"], {"input_ids": ids, "attention_mask": mask})[0]

    def see(
        self, text: str, persona: Persona, screenshot: ImageInput | None = None
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The K prefix vectors [K, hidden], and the head's probability per tag [n_tags] (None without a picture)."""
        trained = self.graphs.fusion_trained
        if screenshot is None and not trained:
            return None, None  # nothing the fusion graph could add: no vectors, no picture to tag
        v_T, mask = self.encode_text(text)
        cfg = self.graphs.fusion_config
        if screenshot is None:
            v_I = np.zeros((1, cfg["image_cells"], cfg["image_dim"]), dtype=np.float32)
            v_mid = np.zeros((1, 4 * cfg["image_cells"], cfg["mid_dim"]), dtype=np.float32)
            has_image = np.zeros(1, dtype=np.float32)
        else:
            (v_I, v_mid), has_image = self.encode_image(screenshot), np.ones(1, dtype=np.float32)
        feeds = {
            "v_I": v_I,
            "v_mid": v_mid,
            "has_image": has_image,
            "v_T": v_T,
            "text_mask": mask.astype(np.float32),
            "v_R": self.encode_role(persona),
        }
        prefix, tag_probs = self.graphs.fusion_session.run(["prefix", "tag_probs"], feeds)
        # An untrained projector gives zero vectors: the decoder gets no prefix positions rather than K zeros.
        vectors = prefix[0] if trained else None
        return vectors, (tag_probs[0] if screenshot is not None else None)
