"""Turning one step's logits into the next token: role-word bias, repetition penalty, temperature, top-k, top-p.

Plain numpy, so the torch reference and the onnxruntime runtime pick tokens with the very same code and, for a
seed, the very same random stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from tokenizers import Tokenizer

from .banned import BannedWords
from .generation import GenerationConfig
from .persona import Persona


def role_word_bias(tokenizer: Tokenizer, role_words: Mapping[str, float]) -> dict[int, float]:
    """Map persona role words to per-token logit bonuses.

    The bonus goes on the first token of each spelling a word takes mid-sentence and at the start (" Forge",
    "forge", ...): once the word is begun the LM finishes it on its own, and biasing every sub-token would also
    push common fragments that are shared with unrelated words.
    """
    bias: dict[int, float] = {}
    for word, weight in role_words.items():
        w = word.strip()
        for spelling in {w, " " + w, w[:1].upper() + w[1:], " " + w[:1].upper() + w[1:]}:
            ids = tokenizer.encode(spelling, add_special_tokens=False).ids
            if ids:
                first = ids[0]
                bias[first] = max(bias.get(first, weight), weight, key=abs)
    return bias


class TokenSampler:
    """Chooses tokens for one reply; holds the reply's random stream and the dense role-word bias."""

    def __init__(
        self,
        config: GenerationConfig,
        vocab_size: int,
        bias: Mapping[int, float] | None = None,
        banned: BannedWords | None = None,
    ) -> None:
        self.config = config
        self.banned = banned if banned is not None and banned.pattern is not None else None
        self.rng = np.random.default_rng(config.seed)
        self.bias: np.ndarray | None = None
        if bias and config.role_word_scale:
            self.bias = np.zeros(vocab_size, dtype=np.float32)
            ids = np.fromiter(bias.keys(), dtype=np.int64)
            self.bias[ids] = np.fromiter(bias.values(), dtype=np.float32) * config.role_word_scale

    def adjust(self, logits: np.ndarray, generated: Iterable[int]) -> np.ndarray:
        """Role-word bias and repetition penalty applied to a copy of one step's logits [vocab]."""
        scores = np.array(logits, dtype=np.float32, copy=True)
        if self.bias is not None:
            scores += self.bias
        penalty = self.config.repetition_penalty
        if penalty != 1.0:
            seen = np.unique(np.fromiter(generated, dtype=np.int64))
            if seen.size:
                picked = scores[seen]
                scores[seen] = np.where(picked > 0, picked / penalty, picked * penalty)
        return scores

    def __call__(self, logits: np.ndarray, generated: Sequence[int] = ()) -> int:
        scores = self.adjust(logits, generated)
        if self.banned is None:
            return self._pick(scores)
        text = self.banned.mask(scores, generated)
        for _ in range(64):  # each refusal masks one token; a handful is the most seen in practice
            token = self._pick(scores)
            if self.banned.allows(token, text):
                return token
            scores[token] = -np.inf
        return self.banned.eos_id  # nothing acceptable among the likely tokens: end the reply instead

    def _pick(self, scores: np.ndarray) -> int:
        cfg = self.config
        if cfg.greedy:
            return int(np.argmax(scores))
        scores = scores / cfg.temperature  # a copy: callers may mask more tokens in `scores` and pick again
        if 0 < cfg.top_k < scores.size:
            kth = np.partition(scores, -cfg.top_k)[-cfg.top_k]
            scores = np.where(scores < kth, -np.inf, scores)
        order = np.argsort(-scores, kind="stable")
        probs = np.exp(scores[order] - scores[order[0]])
        probs /= probs.sum()
        if cfg.top_p < 1.0:
            # keep the smallest head whose mass reaches top_p (always at least one token)
            keep = int(np.searchsorted(np.cumsum(probs), cfg.top_p) + 1)
            probs = probs[:keep] / probs[:keep].sum()
            order = order[:keep]
        return int(order[self.rng.choice(probs.size, p=probs)])


def make_sampler(
    tokenizer: Tokenizer, persona: Persona, config: GenerationConfig, vocab_size: int, eos_id: int
) -> TokenSampler:
    """The sampler for one reply of `persona`: its role-word bias and its banned words."""
    banned = BannedWords(tokenizer, persona.banned_words, eos_id) if persona.banned_words else None
    return TokenSampler(config, vocab_size, role_word_bias(tokenizer, persona.role_words), banned)
