"""Banned words: a hard constraint that no token sequence ever spells one of them as a word, in any case.

Two rules, applied at every step on the reply so far:
  * a token that would complete a banned word followed by a non-letter (" ale,", "Ale ") is never chosen;
  * while the reply ends in a banned word that could still grow into another word ("ale" -> "alert"), the
    word may not end: tokens starting with a non-letter and EOS are masked, so only letters can follow.
Words are matched at word starts only: banning "ale" does not ban "tale". TextStream holds back a trailing
banned word until it is known to be part of a longer one, and drops it if the reply ends there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
from tokenizers import Tokenizer

_token_tables: dict[int, tuple[list[str], np.ndarray]] = {}


def _token_table(tokenizer: Tokenizer) -> tuple[list[str], np.ndarray]:
    """(lower-cased text of each token id, mask of ids whose text starts with a non-letter), once per tokenizer."""
    key = id(tokenizer)
    if key not in _token_tables:
        size = tokenizer.get_vocab_size()
        texts = [
            t.lower() for t in tokenizer.decode_batch([[i] for i in range(size)], skip_special_tokens=False)
        ]
        nonletter = np.array([not t[:1].isalpha() for t in texts], dtype=bool)
        _token_tables[key] = (texts, nonletter)
    return _token_tables[key]


def word_pattern(words: Iterable[str]) -> re.Pattern[str] | None:
    alts = sorted({w.strip().lower() for w in words if w.strip()}, key=len, reverse=True)
    if not alts:
        return None
    return re.compile(r"(?<![^\W\d_])(?:" + "|".join(re.escape(w) for w in alts) + r")")


class BannedWords:
    def __init__(self, tokenizer: Tokenizer, words: Sequence[str], eos_id: int) -> None:
        self.tokenizer = tokenizer
        self.words = [w.strip().lower() for w in words if w.strip()]
        self.pattern = word_pattern(self.words)
        self.texts, self.nonletter = _token_table(tokenizer)
        self.eos_id = eos_id

    def _text(self, generated: Sequence[int]) -> str:
        return self.tokenizer.decode(list(generated), skip_special_tokens=True).lower()

    def _complete_match(self, text: str, start: int) -> bool:
        """A banned word starts at or after `start` and is followed by a non-letter inside `text`."""
        assert self.pattern is not None
        for m in self.pattern.finditer(text, max(0, start)):
            after = text[m.end() : m.end() + 1]
            if after and not after.isalpha():
                return True
        return False

    def ends_in_word(self, text: str) -> bool:
        assert self.pattern is not None
        return any(m.end() == len(text) for m in self.pattern.finditer(text, max(0, len(text) - 64)))

    def mask(self, scores: np.ndarray, generated: Sequence[int]) -> str:
        """Apply the "may not end here" rule in place; return the reply text so far (lower-cased)."""
        text = self._text(generated)
        if self.pattern is not None and self.ends_in_word(text):
            scores[self.nonletter[: scores.size]] = -np.inf
            scores[self.eos_id] = -np.inf
        return text

    def allows(self, token: int, text: str) -> bool:
        """False if appending `token` to `text` spells a banned word followed by a non-letter."""
        if self.pattern is None or token >= len(self.texts):
            return True
        longest = max(len(w) for w in self.words)
        new = text + self.texts[token]
        return not self._complete_match(new, len(text) - longest - 1)
