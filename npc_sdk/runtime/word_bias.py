"""Whole-word logit bias: role words and scene words pushed up (or down) as words, not as loose sub-tokens.

A word such as "anvil" is two SmolLM2 tokens (" an" + "vil"), and " an" is a word of its own. Biasing the first
sub-token pushes every article "an" and loops into "an an an ..."; so the bias follows a trie over all the
tokenizations of each spelling of the word (" anvil", " Anvil", "anvil", "Anvil"):

  * start: a token that begins a spelling at a word boundary gets the bonus only when it cannot be mistaken for a
    word of its own: it is the whole spelling (" forge"), or a proper prefix of at least `MIN_START_LETTERS`
    letters covering at least half the word (" forg" for "forge"). Short pieces (" an", " sl", " For") never get
    a bonus;
  * continuation: once the reply has begun a spelling, by the bias or on its own, the tokens that carry it on
    (or finish it) get the bonus at the next step, so a word once started is completed rather than abandoned.

A positive bonus is spent once the word has been said in the reply: the constraint asks for the word, not for
"forge forge forge" (at weight 10 a single-token word would otherwise win every position). Words of one group (the
lexicon of one thing: "explorer", "adventurer", "traveller") share their bonus, so naming a thing once spends it,
rather than listing every synonym. A negative weight
pushes the same tokens down for the whole reply: the whole-word start and the continuations, never a short piece,
so discouraging "anvil" does not remove the article "an".
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

MIN_START_LETTERS = 4  # a proper-prefix token shorter than this is too likely a word (or fragment) of its own
MAX_TOKEN_CHARS = 24  # longest vocabulary entry considered when splitting a spelling
MAX_MEMO_SPELLINGS = 50_000  # spellings whose start tokens a vocabulary remembers (a few MB at most)


def spellings(word: str) -> set[str]:
    """How a word appears in running text: after a space or not, lower-case or capitalised."""
    w = word.strip()
    cap = w[:1].upper() + w[1:]
    return {w, cap, " " + w, " " + cap}


@dataclass(frozen=True)
class _Spelling:
    text: str  # as the tokenizer's decoded pieces spell it (with a leading space or not)
    weight: float
    word: int  # which word it spells (its spellings share one "said already" flag)


class _Vocab:
    """Decoded text of every token id, and a lookup from text to ids, for splitting spellings into tokens."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        size = tokenizer.get_vocab_size()
        self.texts: list[str] = [tokenizer.decode([i]) for i in range(size)]
        self.by_text: dict[str, list[int]] = {}
        for i, text in enumerate(self.texts):
            if text and len(text) <= MAX_TOKEN_CHARS and "\ufffd" not in text:
                self.by_text.setdefault(text, []).append(i)

        # spelling -> its word-start tokens; a persona's role words recur every turn, so this is worked out once.
        # Games name entities freely, so the table is bounded: the oldest spellings go first.
        self._starts: dict[str, list[tuple[int, int, bool]]] = {}

    def starts(self, text: str) -> list[tuple[int, int, bool]]:
        """(token id, length, counts as a start) of every token that begins the spelling `text`: a start is the
        whole spelling or a prefix long enough not to be mistaken for a word of its own (module docstring)."""
        found = self._starts.get(text)
        if found is None:
            word_letters = _letters(text)
            found = []
            for tid, length in self.pieces_at(text, 0):
                piece = text[:length]
                if length < len(text) and not _letters(piece):
                    continue  # a bare space is no start of a word
                whole = length == len(text)
                found.append(
                    (tid, length, whole or _letters(piece) >= max(MIN_START_LETTERS, (word_letters + 1) // 2))
                )
            if len(self._starts) >= MAX_MEMO_SPELLINGS:
                del self._starts[next(iter(self._starts))]
            self._starts[text] = found
        return found

    def pieces_at(self, text: str, offset: int) -> list[tuple[int, int]]:
        """(token id, length) of every token whose text equals text[offset:offset+length]."""
        out = []
        for length in range(1, min(MAX_TOKEN_CHARS, len(text) - offset) + 1):
            for tid in self.by_text.get(text[offset : offset + length], ()):
                out.append((tid, length))
        return out


_VOCAB_CACHE: dict[int, tuple[Tokenizer, _Vocab]] = {}  # the tokenizer is held so its id is never reused


def _vocab(tokenizer: Tokenizer) -> _Vocab:
    key = id(tokenizer)
    if key not in _VOCAB_CACHE:
        _VOCAB_CACHE[key] = (tokenizer, _Vocab(tokenizer))
    return _VOCAB_CACHE[key][1]


def _letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)


BUILT_KEPT = 64  # word sets whose tables `WordBias.shared` keeps (a persona's role words with one scene's words)
_BUILT: OrderedDict[tuple, WordBias] = OrderedDict()


class WordBias:
    """Per-step logit bonuses for a set of words; `bonus(generated)` says which tokens get what now."""

    def __init__(
        self, tokenizer: Tokenizer, words: Mapping[str, float], groups: Mapping[str, str] | None = None
    ) -> None:
        """`groups` maps a word to the thing it names: words of one group ("slime", "slimes", "ooze") share one
        bonus, spent as soon as any of them is said (default: every word is its own group)."""
        self.vocab = _vocab(tokenizer)
        self.spellings: list[_Spelling] = []
        group_ids: dict[str, int] = {}
        for word, weight in words.items():
            if not word.strip() or weight == 0:
                continue
            group = (groups or {}).get(word, word)
            n = group_ids.setdefault(group, len(group_ids))
            for s in sorted(spellings(word)):
                self.spellings.append(_Spelling(s, float(weight), n))
        # start[token] = {word: bonus} at a word boundary; continuation[(spelling, offset)] = [(token, new offset)]
        self.start: dict[int, dict[int, float]] = {}
        self.start_needs_boundary: set[int] = set()  # starts without a leading space: only after non-letters
        self.starts_of: dict[int, list[tuple[int, int]]] = {}  # token -> [(spelling index, offset after it)]
        self._continuations: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self._memo: tuple[list[int], list[tuple[int, int]], frozenset[int]] = ([], [], frozenset())
        for si, sp in enumerate(self.spellings):
            for tid, length, is_start in self.vocab.starts(sp.text):
                self.starts_of.setdefault(tid, []).append((si, length))
                if is_start:
                    self.start.setdefault(tid, {})[sp.word] = sp.weight
                    if not sp.text.startswith(" "):
                        self.start_needs_boundary.add(tid)

    @classmethod
    def shared(
        cls, tokenizer: Tokenizer, words: Mapping[str, float], groups: Mapping[str, str] | None = None
    ) -> WordBias:
        """A WordBias whose tables were built once for these words (~3 ms each time otherwise, 8 times before a
        best-of-8 turn's first token, and again every turn of a dialogue in one scene); the state a reply builds
        as it grows (`state`) is its own."""
        key = (id(tokenizer), tuple(sorted(words.items())), tuple(sorted((groups or {}).items())))
        built = _BUILT.get(key)
        if built is None:
            built = _BUILT[key] = cls(tokenizer, words, groups)
            while len(_BUILT) > BUILT_KEPT:
                _BUILT.popitem(last=False)
        else:
            _BUILT.move_to_end(key)
        mine = copy.copy(built)  # the tables are read-only, and `continuations` only ever adds what it computed
        mine._memo = ([], [], frozenset())
        return mine

    def continuations(self, si: int, offset: int) -> list[tuple[int, int]]:
        key = (si, offset)
        if key not in self._continuations:
            text = self.spellings[si].text
            self._continuations[key] = [(tid, offset + n) for tid, n in self.vocab.pieces_at(text, offset)]
        return self._continuations[key]

    def state(self, generated: Sequence[int]) -> tuple[list[tuple[int, int]], frozenset[int]]:
        """Spellings the reply is in the middle of, as (spelling index, characters matched so far), and the words
        it has already said.

        Replies grow a token at a time, so the state after the previous call is extended rather than recomputed.
        """
        seen, open_, said = self._memo
        if len(seen) > len(generated) or list(generated[: len(seen)]) != seen:
            seen, open_, said = [], [], frozenset()
        for i in range(len(seen), len(generated)):
            tid = generated[i]
            advanced, finished = [], set()
            for si, off in open_:
                for cont, new_off in self.continuations(si, off):
                    if cont == tid:
                        if new_off < len(self.spellings[si].text):
                            advanced.append((si, new_off))
                        else:
                            finished.add(self.spellings[si].word)
            starts = self.starts_of.get(tid, ())
            boundary = bool(starts) and self._at_boundary(generated, i)
            for si, off in starts:
                text = self.spellings[si].text
                if boundary or text.startswith(" "):
                    if off < len(text):
                        advanced.append((si, off))
                    else:
                        finished.add(self.spellings[si].word)
            open_ = advanced
            said = said | finished
        self._memo = (list(generated), open_, said)
        return open_, said

    def _at_boundary(self, generated: Sequence[int], i: int) -> bool:
        """Whether token `i` may start a word without a leading space (reply start, or after a non-letter)."""
        if i == 0:
            return True
        prev = self.vocab.texts[generated[i - 1]]
        return not prev or not prev[-1].isalnum()

    def bonus(self, generated: Sequence[int]) -> dict[int, float]:
        """token id -> logit bonus for the next step."""
        out: dict[int, float] = {}
        open_, said = self.state(generated)
        at_boundary = self._at_boundary(generated, len(generated)) if generated else True
        for tid, by_word in self.start.items():
            if tid in self.start_needs_boundary and not at_boundary:
                continue
            live = [w for word, w in by_word.items() if w < 0 or word not in said]
            if live:
                out[tid] = max(live, key=abs)
        for si, off in open_:
            sp = self.spellings[si]
            if sp.weight > 0 and sp.word in said:
                continue
            for tid, _ in self.continuations(si, off):
                out[tid] = max(out.get(tid, sp.weight), sp.weight, key=abs)
        return out

    def apply(self, scores: np.ndarray, generated: Sequence[int], scale: float = 1.0) -> None:
        """Add the bonuses (times `scale`) to one step's scores in place."""
        for tid, w in self.bonus(generated).items():
            if tid < scores.size:
                scores[tid] += w * scale


def merge_weights(*tables: Mapping[str, float] | Iterable[tuple[str, float]]) -> dict[str, float]:
    """One word -> weight table from several; for a word in more than one, the largest magnitude wins."""
    out: dict[str, float] = {}
    for table in tables:
        items = table.items() if isinstance(table, Mapping) else table
        for word, w in items:
            key = word.strip().lower()
            if key:
                out[key] = max(out.get(key, w), w, key=abs)
    return out
