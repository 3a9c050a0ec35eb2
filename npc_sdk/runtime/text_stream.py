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
# words that open a second clause after a comma: the 135M decoder's replies mostly go wrong there ("I've never heard
# of her, but she's the chief of the guild"), so a reply may end before them (GenerationConfig.max_clauses)
_CONNECTIVES = (
    "but so and or where which because though although while since if unless until then as yet when who only"
).split()
_CONNECTIVE = "(?:" + "|".join(_CONNECTIVES) + ")"
# a clause boundary: a comma, colon or spaced dash before a connective (a character after it shows the word is
# whole), a semicolon, or an unspaced long dash
_CLAUSE = re.compile(
    r"\s*(?:[,:]|\s[\u2014\u2013-])\s+(?=" + _CONNECTIVE + r"[^A-Za-z'])|\s*;\s+|\s*[\u2014\u2013]\s*"
)
# what may still become a boundary: a trailing mark, with at most the start of a connective after it
_PENDING_CLAUSE = re.compile(r"\s*(?:[,;:]|\s[\u2014\u2013-]|[\u2014\u2013])(?:\s+([A-Za-z]*))?\s*$")


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


def clause_cut(text: str, max_clauses: int) -> int:
    """Where `text` ends after `max_clauses` clauses of at least SHORT_SENTENCE_WORDS words (the reply is then
    closed with a full stop); -1 if not yet. A comma before "and"/"or" that ends a list ("bread, cheese, and milk")
    is not a boundary."""
    if max_clauses <= 0:
        return -1
    counted, start = 0, 0
    for m in _CLAUSE.finditer(text):
        head = text[start : m.start()]
        if len(head.split()) < SHORT_SENTENCE_WORDS:
            continue
        follows = text[m.end() :].split(maxsplit=1)
        if (
            follows
            and follows[0] in ("and", "or")
            and "," in head
            and len(head.rsplit(",", 1)[1].split()) <= 2
        ):
            continue
        counted, start = counted + 1, m.end()
        if counted == max_clauses:
            return m.start()
    return -1


def _pending_clause(text: str) -> int:
    """Length of a tail that may still turn out to be a clause boundary (0 if none)."""
    m = _PENDING_CLAUSE.search(text)
    if m is None:  # trailing spaces wait for what follows them: a dash would cut before them
        return len(text) - len(text.rstrip())
    word = m.group(1) or ""
    if word and not any(c.startswith(word) for c in _CONNECTIVES):
        return 0
    return len(text) - m.start()


class TextStream:
    """Feed token ids with `push`; each call returns the text that is safe to show now.

    Text is held back while it ends in an incomplete UTF-8 character or in what could be the start of a stop
    string. When a stop string appears, `stopped` turns true and the text is cut before it; likewise once
    `max_sentences` sentences have ended (0: no limit), cut after the last one's closing mark; and once
    `max_clauses` clauses have (0: no limit), cut before the next one's comma and close the reply with a full stop.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        stop: Sequence[str] = (),
        banned: Sequence[str] = (),
        max_sentences: int = 0,
        max_clauses: int = 0,
    ) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(stop)
        self.max_sentences = max_sentences
        self.max_clauses = max_clauses
        self.banned = word_pattern(banned)
        words = {w.strip().lower() for w in banned if w.strip()}
        # every proper start of a banned word, for `_banned_start` (a few set lookups a token)
        self.banned_starts = {w[:n] for w in words for n in range(1, len(w))}
        self.banned_start_max = max((len(w) - 1 for w in words), default=0)
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

    def _banned_start(self, text: str) -> int:
        """Length of a trailing fragment that later tokens could complete into a banned word ("elve" of "elves"):
        shown, it could not be taken back when the word is cut."""
        for n in range(min(self.banned_start_max, len(text)), 0, -1):
            start = len(text) - n
            if text[start:].lower() in self.banned_starts and (start == 0 or not text[start - 1].isalpha()):
                return n
        return 0

    def _holdback(self, text: str) -> int:
        """How many trailing characters could still grow into a stop string, be a banned word or end a clause.
        Whitespace before what is held (or at the very end) waits too: a reply that ends there is stripped of it."""
        hold = max(self._banned_tail(text), self._banned_start(text))
        if self.max_clauses > 0:
            hold = max(hold, _pending_clause(text))
        for s in self.stop:
            for n in range(min(len(s) - 1, len(text)), 0, -1):
                if text.endswith(s[:n]):
                    hold = max(hold, n)
                    break
        kept = text[: len(text) - hold]
        return hold + len(kept) - len(kept.rstrip())

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
        close = ""
        clause = clause_cut(text, self.max_clauses)
        if clause >= 0 and (cut < 0 or clause < cut):
            cut, close = clause, "."
        if cut >= 0:
            self.stopped = True
            self.text = text[:cut] + close
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
