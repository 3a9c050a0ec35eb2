"""Token ids -> streamed text deltas that never split a UTF-8 character and never leak a stop string."""

from __future__ import annotations

import re
from collections.abc import Sequence

from tokenizers import Tokenizer

from .banned import word_pattern

_REPLACEMENT = "\ufffd"  # what byte-level BPE decodes an incomplete UTF-8 sequence to
# a sentence has ended once whitespace follows its closing mark (and any closing quote or bracket): "3.5" has not
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s)")
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "st", "mt", "capt", "sgt", "lt", "col", "gen", "prof", "vs"}
)
SHORT_SENTENCE_WORDS = 4  # "No, lad." runs on into the next sentence rather than being the whole reply


def sentence_cut(text: str, max_sentences: int) -> int:
    """Where `text` ends after `max_sentences` sentences of at least SHORT_SENTENCE_WORDS words; -1 if not yet."""
    if max_sentences <= 0:
        return -1
    counted, start = 0, 0
    for m in _SENTENCE_END.finditer(text):
        before = text[start : m.start()].split()
        if m.group().startswith(".") and before and before[-1].lower().strip("\"'(") in _ABBREVIATIONS:
            continue  # "Mr. Hale" goes on
        if len(text[start : m.end()].split()) < SHORT_SENTENCE_WORDS:
            continue
        counted, start = counted + 1, m.end()
        if counted == max_sentences:
            return m.end()
    return -1


class TextStream:
    """Feed token ids with `push`; each call returns the text that is safe to show now.

    Text is held back while it ends in an incomplete UTF-8 character or in what could be the start of a stop
    string. When a stop string appears, `stopped` turns true and the text is cut before it; likewise once
    `max_sentences` sentences have ended (0: no limit), cut after the last one's closing mark.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        stop: Sequence[str] = (),
        banned: Sequence[str] = (),
        max_sentences: int = 0,
    ) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(stop)
        self.max_sentences = max_sentences
        self.banned = word_pattern(banned)
        self.ids: list[int] = []
        self.text = ""  # the reply so far, stop string excluded
        self.emitted = 0  # characters of `text` already handed out
        self.stopped = False

    def _banned_tail(self, text: str) -> int:
        """Length of a banned word the text ends in (0 if none): it may yet turn out to start a longer word."""
        if self.banned is None:
            return 0
        lowered = text.lower()
        ends = [m for m in self.banned.finditer(lowered, max(0, len(text) - 64)) if m.end() == len(text)]
        return max((m.end() - m.start() for m in ends), default=0)

    def _holdback(self, text: str) -> int:
        """How many trailing characters could still grow into a stop string or be a banned word."""
        hold = self._banned_tail(text)
        for s in self.stop:
            for n in range(min(len(s) - 1, len(text)), 0, -1):
                if text.endswith(s[:n]):
                    hold = max(hold, n)
                    break
        return hold

    def push(self, token_id: int) -> str:
        if self.stopped:
            return ""
        self.ids.append(token_id)
        # a reply never starts with whitespace (a first token " Wren" would stream as " Wren")
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True).lstrip()
        cut = min((i for i in (text.find(s) for s in self.stop) if i >= 0), default=-1)
        ended = sentence_cut(text, self.max_sentences)
        if ended >= 0 and (cut < 0 or ended < cut):
            cut = ended
        if cut >= 0:
            self.stopped = True
            self.text = text[:cut]
            return self._take(len(self.text))
        self.text = text
        if text.endswith(_REPLACEMENT):
            return ""
        return self._take(len(text) - self._holdback(text))

    def finish(self) -> str:
        """Everything not yet emitted (called once the reply ends for any reason)."""
        if not self.stopped:
            self.text = self.text.rstrip(_REPLACEMENT)
            cut = self._banned_tail(self.text)
            if cut:  # the reply stopped right after a banned word: it never reaches the player
                self.text = self.text[: len(self.text) - cut].rstrip()
        return self._take(len(self.text))

    def _take(self, upto: int) -> str:
        if upto <= self.emitted:
            return ""
        delta = self.text[self.emitted : upto]
        self.emitted = upto
        return delta
