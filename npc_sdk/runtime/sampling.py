"""Turning one step's logits into the next token: word bias, repetition penalty, repeat blocking, temperature,
top-k, top-p.

Plain numpy, so the torch reference and the onnxruntime runtime pick tokens with the very same code and, for a
seed, the very same random stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from tokenizers import Tokenizer

from ..personas.persona import Persona
from .banned import BannedWords
from .generation import GenerationConfig
from .word_bias import WordBias, merge_weights

# A 135M decoder under a word bias can fall into loops ("tomorrow tomorrow tomorrow ..."); the soft repetition
# penalty slows them but does not stop them. So, as no_repeat_ngram_size does in other runtimes, by default a reply
# never repeats a token trigram it already holds, and never says the same token twice in a row
# (GenerationConfig.no_repeat_ngram). Short NPC lines lose nothing real by it.
# Across turns the same model tends to open every reply the way it opened the last one ("I am the Firefly, the
# protector of..." three times running); so no token 4-gram of the NPC's last two replies is said again either
# (GenerationConfig.no_repeat_history).
HISTORY_REPLIES = 2


class HistoryNgrams:
    """The (n-1)-gram -> next-token table of earlier replies: what continuing a recent phrase would say again."""

    def __init__(self, replies: Sequence[Sequence[int]], n: int) -> None:
        self.n = n
        self.next: dict[tuple[int, ...], set[int]] = {}
        for ids in replies:
            for i in range(len(ids) - n + 1):
                self.next.setdefault(tuple(int(t) for t in ids[i : i + n - 1]), set()).add(
                    int(ids[i + n - 1])
                )

    def blocked(self, generated: Sequence[int]) -> set[int]:
        if len(generated) < self.n - 1 or not self.next:
            return set()
        return self.next.get(tuple(int(t) for t in generated[len(generated) - self.n + 1 :]), set())


def repeat_blocked(generated: Sequence[int], n: int = 3) -> list[int]:
    """Tokens that would repeat the last token or complete an n-gram the reply already holds."""
    if not generated:
        return []
    blocked = {int(generated[-1])}
    if len(generated) >= n:
        tail = tuple(generated[len(generated) - n + 1 :])
        for i in range(len(generated) - n + 1):
            if tuple(generated[i : i + n - 1]) == tail:
                blocked.add(int(generated[i + n - 1]))
    return sorted(blocked)


class TokenSampler:
    """Chooses tokens for one reply; holds the reply's random stream and its whole-word bias."""

    def __init__(
        self,
        config: GenerationConfig,
        vocab_size: int,
        words: WordBias | None = None,
        banned: BannedWords | None = None,
        history: HistoryNgrams | None = None,
    ) -> None:
        self.config = config
        self.history = history
        self.vocab_size = vocab_size
        self.banned = banned if banned is not None and banned.pattern is not None else None
        self.rng = np.random.default_rng(config.seed)
        self.words = words if words is not None and (words.start or words.spellings) else None
        # the decoder's own log-probability of each picked token, before any bias: the critic's fluency signal
        self.logprobs: list[float] = []
        # (word, bonus, source) of the whole-word bias, strongest first (make_sampler sets it; "why this reply")
        self.biased: tuple[tuple[str, float, str], ...] = ()

    def adjust(self, logits: np.ndarray, generated: Sequence[int]) -> np.ndarray:
        """Word bias, repetition penalty and repeat blocking applied to a copy of one step's logits [vocab]."""
        scores = np.array(logits, dtype=np.float32, copy=True)
        if self.words is not None:
            self.words.apply(scores, generated)
        penalty = self.config.repetition_penalty
        if penalty != 1.0:
            seen = np.unique(np.fromiter(generated, dtype=np.int64))
            if seen.size:
                picked = scores[seen]
                scores[seen] = np.where(picked > 0, picked / penalty, picked * penalty)
        blocked = (
            repeat_blocked(generated, self.config.no_repeat_ngram) if self.config.no_repeat_ngram else []
        )
        if blocked:
            scores[blocked] = -np.inf
        if self.history is not None:
            again = self.history.blocked(generated)
            if again:
                scores[sorted(again)] = -np.inf
        return scores

    def __call__(self, logits: np.ndarray, generated: Sequence[int] = ()) -> int:
        token = self._choose(logits, generated)
        top = float(np.max(logits))
        self.logprobs.append(float(logits[token]) - top - float(np.log(np.exp(logits - top).sum())))
        return token

    @property
    def fluency(self) -> float | None:
        """Mean log-probability of the picked tokens under the unbiased decoder (None before any)."""
        return float(np.mean(self.logprobs)) if self.logprobs else None

    def _choose(self, logits: np.ndarray, generated: Sequence[int]) -> int:
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
            # only the top-k candidates (ties at the k-th kept) are sorted, not the whole vocabulary: a tenth of
            # a decode step's time at 49k tokens; the same tokens in the same order as a full sort
            kth = np.partition(scores, -cfg.top_k)[-cfg.top_k]
            candidates = np.flatnonzero(scores >= kth)
            order = candidates[np.argsort(-scores[candidates], kind="stable")]
        else:
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
    tokenizer: Tokenizer,
    persona: Persona,
    config: GenerationConfig,
    vocab_size: int,
    eos_id: int,
    scene_words: tuple[Mapping[str, float], Mapping[str, str]] | None = None,
    recent_replies: Sequence[str] = (),
    heard: Sequence[str] = (),
) -> TokenSampler:
    """The sampler for one reply of `persona`: its role words (times `config.role_word_scale`) and this turn's
    scene words (runtime/scene.py: weights, and which thing each word names) as one whole-word bias, its banned
    words, and the phrases not to say again: of its last replies (`recent_replies`, oldest first), and of what the
    other NPCs of a scene just said (`heard`: a 135M decoder otherwise parrots the line before its own)."""
    banned = BannedWords(tokenizer, persona.banned_words, eos_id) if persona.banned_words else None
    role = {w: v * config.role_word_scale for w, v in persona.role_words.items()}
    scene, groups = scene_words or ({}, {})
    weights = merge_weights(role, scene)
    words = WordBias.shared(tokenizer, weights, groups) if any(weights.values()) else None
    history = None
    recent = [r for r in [*recent_replies[-HISTORY_REPLIES:], *heard] if r.strip()]
    if config.no_repeat_history and recent:
        ids = [tokenizer.encode(r, add_special_tokens=False).ids for r in recent]
        history = HistoryNgrams(ids, config.no_repeat_history)
    sampler = TokenSampler(config, vocab_size, words, banned, history)
    sampler.biased = _biased_words(weights, merge_weights(role))
    return sampler


def _biased_words(
    weights: Mapping[str, float], role: Mapping[str, float]
) -> tuple[tuple[str, float, str], ...]:
    """(word, bonus, source) of the merged bias, strongest first: "role" where the persona's role word won,
    "absent" for a pushed-down scene word, "scene" for the rest."""
    out = []
    for word, w in weights.items():
        if w:
            source = "role" if role.get(word) == w else "absent" if w < 0 else "scene"
            out.append((word, float(w), source))
    return tuple(sorted(out, key=lambda t: (-abs(t[1]), t[0])))
