"""GenerationConfig: the sampling and stopping options of one reply, with their bounds checked."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import InvalidInputError

MAX_NEW_TOKENS = 1024
MAX_STOP_STRINGS = 8
MAX_CANDIDATES = 8


@dataclass(frozen=True)
class GenerationConfig:
    max_tokens: int = 80  # new tokens at most, in [1, 1024]
    # 0 means greedy; at most 5. 0.7 by default, for best of 8 on the preference-trained decoder: read blind on 480
    # held-out lines, 235 acceptable against 211 at 0.3 (40 lines won, 16 lost). Its candidates differ more, so the
    # critic has more to choose from. One candidate alone read the same at 0.3 and 0.7 (108 of 240 each;
    # docs/training.md).
    temperature: float = 0.7
    top_p: float = 0.9  # nucleus mass in (0, 1]; 1 disables
    top_k: int = 40  # keep the k best tokens; 0 disables
    repetition_penalty: float = 1.1  # >1 discourages tokens already in this reply; in [1, 3]
    no_repeat_ngram: int = 3  # never repeat a token n-gram of this reply, nor a token twice in a row; 0: off
    no_repeat_history: int = 4  # never repeat a token n-gram of the NPC's last two replies; 0: off
    seed: int | None = None  # fixes the sampler's random stream; None draws a fresh one
    stop: tuple[str, ...] = field(default_factory=tuple)  # extra stop strings (EOS always stops)
    role_word_scale: float = 1.0  # multiplies every persona role-word bonus; 0 switches the constraint off
    # logit bonus for the words of what is in view (runtime/scene.py); 0: off. A nudge, no longer a push (it was
    # 4.0): read replies were no more acceptable with it, and it forced nouns into sentences (docs/training.md)
    scene_word_weight: float = 1.5
    absent_word_weight: float = 3.0  # logit penalty for words of what the image head is sure is not there
    # best of N: N replies decode as one batch and the critic (runtime/critic.py) picks one, which then streams a
    # token a step. Read blind, held-out replies were acceptable 125 times in 240 with 8 against 112 with 4, at
    # 295-327 ms to the first token (median, temperature 0.7; 380-462 ms at most) on two cores (docs/server.md).
    # Under load a turn takes only the slots that are spare. 1 streams from the first token (~70 ms).
    candidates: int = 8
    # the reply ends after this many sentences (a sentence under 4 words does not count); 0: off. The 135M decoder's
    # first sentence is its best: read replies mostly go wrong in the second (docs/training.md)
    max_sentences: int = 1
    # the reply also ends before the comma, semicolon or dash that opens its next clause (", but she's the chief of
    # the guild"), once this many clauses of 4 words or more are said; 0: off. Read blind, 172 held-out replies it
    # shortened were acceptable 77 times cut against 22 whole (docs/training.md)
    max_clauses: int = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(name: str, why: str) -> InvalidInputError:
            return InvalidInputError(f"generation.{name}", why)

        if not isinstance(self.max_tokens, int) or not 1 <= self.max_tokens <= MAX_NEW_TOKENS:
            raise bad("max_tokens", f"must be an integer in [1, {MAX_NEW_TOKENS}], got {self.max_tokens!r}")
        if not 0.0 <= self.temperature <= 5.0:
            raise bad("temperature", f"must be in [0, 5], got {self.temperature!r}")
        if not 0.0 < self.top_p <= 1.0:
            raise bad("top_p", f"must be in (0, 1], got {self.top_p!r}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise bad("top_k", f"must be an integer >= 0, got {self.top_k!r}")
        if not 1.0 <= self.repetition_penalty <= 3.0:
            raise bad("repetition_penalty", f"must be in [1, 3], got {self.repetition_penalty!r}")
        if not isinstance(self.no_repeat_ngram, int) or not 0 <= self.no_repeat_ngram <= 8:
            raise bad("no_repeat_ngram", f"must be an integer in [0, 8], got {self.no_repeat_ngram!r}")
        if not isinstance(self.no_repeat_history, int) or not 0 <= self.no_repeat_history <= 8:
            raise bad("no_repeat_history", f"must be an integer in [0, 8], got {self.no_repeat_history!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or not 0 <= self.seed < 2**63):
            raise bad("seed", f"must be an integer in [0, 2^63), got {self.seed!r}")
        if not isinstance(self.max_sentences, int) or not 0 <= self.max_sentences <= 8:
            raise bad("max_sentences", f"must be an integer in [0, 8], got {self.max_sentences!r}")
        if not isinstance(self.max_clauses, int) or not 0 <= self.max_clauses <= 8:
            raise bad("max_clauses", f"must be an integer in [0, 8], got {self.max_clauses!r}")
        if len(self.stop) > MAX_STOP_STRINGS:
            raise bad("stop", f"at most {MAX_STOP_STRINGS} stop strings, got {len(self.stop)}")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise bad("stop", "stop strings must be non-empty text")
        if not 0.0 <= self.role_word_scale <= 10.0:
            raise bad("role_word_scale", f"must be in [0, 10], got {self.role_word_scale!r}")
        if not isinstance(self.candidates, int) or not 1 <= self.candidates <= MAX_CANDIDATES:
            raise bad("candidates", f"must be an integer in [1, {MAX_CANDIDATES}], got {self.candidates!r}")
        for name in ("scene_word_weight", "absent_word_weight"):
            value = getattr(self, name)
            if not 0.0 <= value <= 10.0:  # also refuses NaN
                raise bad(name, f"must be in [0, 10], got {value!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def with_(self, **changes: Any) -> GenerationConfig:
        return replace(self, **changes)
