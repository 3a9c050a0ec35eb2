"""Long-term memory of one conversation: earlier exchanges recalled once the history window has rolled past them.

The prompt shows the persona, the turns that fit the context and the player's line. Once a long session no longer
fits, its oldest turns leave the prompt (turn.py). Before this, what the player said there was simply gone ("my name
is Ada", 300 turns ago). Now every turn has a sentence vector (the MiniLM the model already has, over the player's
line and the reply). When the window has rolled over, the exchanges most similar to this line are told to the
decoder in a note before it, within the persona's `memory_budget_tokens`:

    (Earlier the player said: "My name is Ada, I'm looking for my brother." You answered: "I'll keep an eye out.")

The note is the turn's context, stored with it like lore, so the history renders later exactly as the decoder saw
it and the KV state stays reusable. Vectors are made once per turn and kept in a growing matrix, so recall is one
matrix-vector product: about a millisecond at 10,000 turns (`npc-sdk bench --memory`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..personas.prompt import Turn

# cosine below which an exchange is not about this line (nothing is better than noise). MiniLM puts "What's my
# name again?" at 0.24 from "My name is Ada, I'm looking for my brother" and unrelated small talk at 0.0-0.15
MIN_SIMILARITY = 0.22
MAX_RECALLED = 3  # exchanges per note at most: a 135M decoder loses the thread in a longer one
MAX_QUOTE_CHARS = 240  # a recalled line or reply is cut to this many characters


def exchange_text(turn: Turn) -> str:
    """What a turn's vector is made from."""
    return f"{turn.user}\n{turn.reply}"


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_QUOTE_CHARS else text[: MAX_QUOTE_CHARS - 3].rstrip() + "..."


def memory_note(turns: Sequence[Turn]) -> str:
    """The note that tells the decoder the recalled exchanges, oldest first ("" for none)."""
    said = [f'Earlier the player said: "{_quote(t.user)}" You answered: "{_quote(t.reply)}"' for t in turns]
    return "(" + " ".join(said) + ")\n" if said else ""


class TurnMemory:
    """Sentence vectors of a conversation's turns, in order, and recall among the first `upto` of them."""

    def __init__(self, vectors: Callable[[Sequence[str]], np.ndarray]) -> None:
        self._embed = vectors
        self._matrix = np.zeros((0, 0), dtype=np.float32)  # capacity rows; the first `count` are filled
        self._keys: list[str] = []

    @property
    def count(self) -> int:
        return len(self._keys)

    def sync(self, history: Sequence[Turn]) -> None:
        """Make vectors for turns not seen yet; start over when the history is not the one indexed so far."""
        keys = [exchange_text(t) for t in history]
        if keys[: self.count] != self._keys:
            self._keys, self._matrix = [], np.zeros((0, 0), dtype=np.float32)
        new = keys[self.count :]
        if new:
            self._put(new, np.asarray(self._embed(new), dtype=np.float32))

    def _put(self, keys: list[str], vecs: np.ndarray) -> None:
        vecs = vecs / (np.linalg.norm(vecs, axis=1, keepdims=True) + 1e-9)
        need = self.count + len(keys)
        if need > self._matrix.shape[0]:  # grow by doubling: appending stays amortised O(1) a turn
            grown = np.zeros((max(need, 2 * self._matrix.shape[0], 64), vecs.shape[1]), dtype=np.float32)
            if self.count:
                grown[: self.count] = self._matrix[: self.count]
            self._matrix = grown
        self._matrix[self.count : need] = vecs
        self._keys.extend(keys)

    def preload(self, history: Sequence[Turn], vectors: Sequence[np.ndarray | None]) -> None:
        """Take the stored vectors of the history's first turns (up to the first one stored without)."""
        have = next((i for i, v in enumerate(vectors) if v is None), min(len(vectors), len(history)))
        if have:
            self._keys, self._matrix = [], np.zeros((0, 0), dtype=np.float32)
            self._put([exchange_text(t) for t in history[:have]], np.stack(list(vectors[:have])))

    def append(self, history: Sequence[Turn], vector: np.ndarray) -> None:
        """The vector of the history's newest turn, made when it was stored; kept only when every turn before it
        has one (else the next sync makes them all)."""
        if self.count == len(history) - 1:  # sync checks the keys, and starts over should they not match
            self._put([exchange_text(history[-1])], np.asarray(vector, dtype=np.float32)[None])

    def recall(
        self, line_vector: np.ndarray, upto: int, budget_tokens: int, count_tokens: Callable[[str], int]
    ) -> list[int]:
        """Indices (ascending) of the turns before `upto` most similar to the line, within the token budget."""
        upto = min(upto, self.count)
        if upto <= 0 or budget_tokens <= 0:
            return []
        picked = most_similar(  # +16: the quotes and the note's words
            self._matrix[:upto], line_vector, MAX_RECALLED, budget_tokens, lambda i: count_tokens(self._keys[i]) + 16
        )
        return sorted(picked)


MEMORY_SOURCES = (
    "player",
    "game",
    "persona",
)  # said by the player / added by the game / seeded in a persona file
MAX_KNOWN = 3  # long-term memories per note at most, besides the recalled exchanges
MAX_MEMORY_CHARS = 500


@dataclass(frozen=True)
class Memory:
    """Something an NPC knows beyond this session's history, recalled when a line is about it.

    Scope: `npc` (a persona's name) for one NPC's own memory; `group` alone for every NPC whose persona has that
    `memory_group` (the whole village knows). `player_id` set: about that player, recalled only in that player's
    sessions; empty: known whoever the NPC talks to."""

    text: str
    npc: str = ""
    group: str = ""
    player_id: str = ""
    source: str = "game"
    id: str = ""
    created_ms: int = 0

    def check(self, field: str = "memory") -> Memory:
        if not isinstance(self.text, str) or not self.text.strip():
            raise InvalidInputError(f"{field}.text", "is empty")
        if len(self.text) > MAX_MEMORY_CHARS:
            raise InvalidInputError(
                f"{field}.text", f"is {len(self.text)} characters, over {MAX_MEMORY_CHARS}"
            )
        if not self.npc.strip() and not self.group.strip():
            raise InvalidInputError(
                f"{field}.npc", "give the NPC (a persona name) or a group the memory belongs to"
            )
        if self.source not in MEMORY_SOURCES:
            raise InvalidInputError(f"{field}.source", f"must be one of {', '.join(MEMORY_SOURCES)}")
        return self

    def told(self) -> str:
        """How the note tells it: the player's own words quoted, anything else as written."""
        text = _quote(self.text)
        return f'The player told you before: "{text}"' if self.source == "player" else _sentence_end(text)


def _sentence_end(text: str) -> str:
    return text if text[-1:] in ".!?\"'" else text + "."


def known_note(memories: Sequence[Memory]) -> str:
    """The note that tells the decoder what it knows from before this session ("" for nothing)."""
    return "(You remember: " + " ".join(m.told() for m in memories) + ")\n" if memories else ""


class KnownMemories:
    """Long-term memories with their sentence vectors: a persona's seeded ones and the store's for one NPC and
    player. Vectors given (the store keeps them) are used as they are; the rest are made once and kept."""

    def __init__(
        self, vectors: Callable[[Sequence[str]], np.ndarray], made: dict[str, np.ndarray] | None = None
    ) -> None:
        self._embed = vectors
        # text -> unit vector, for memories that came without one (may be shared by several conversations)
        self._made: dict[str, np.ndarray] = made if made is not None else {}
        self.items: list[Memory] = []
        self._matrix = np.zeros((0, 0), dtype=np.float32)

    def vector(self, text: str) -> np.ndarray:
        if text not in self._made:
            self._made[text] = unit(np.asarray(self._embed([text])[0], dtype=np.float32))
        return self._made[text]

    def set(self, memories: Sequence[Memory], vectors: Sequence[np.ndarray | None] = ()) -> None:
        todo = [m.text for i, m in enumerate(memories) if (i >= len(vectors) or vectors[i] is None)]
        missing = [t for t in dict.fromkeys(todo) if t not in self._made]
        if missing:
            for text, vec in zip(missing, np.asarray(self._embed(missing), dtype=np.float32), strict=True):
                self._made[text] = unit(vec)
        rows = [
            unit(np.asarray(vectors[i], dtype=np.float32))
            if i < len(vectors) and vectors[i] is not None
            else self._made[m.text]
            for i, m in enumerate(memories)
        ]
        self.items = list(memories)
        self._matrix = np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def recall(
        self, line_vector: np.ndarray, budget_tokens: int, count_tokens: Callable[[str], int]
    ) -> list[Memory]:
        """The memories most similar to the line (at most MAX_KNOWN, within the budget), most similar first."""
        if not self.items or budget_tokens <= 0:
            return []
        picked = most_similar(
            self._matrix, line_vector, MAX_KNOWN, budget_tokens, lambda i: count_tokens(self.items[i].told()) + 4
        )
        return [self.items[i] for i in picked]


def most_similar(
    matrix: np.ndarray, line_vector: np.ndarray, most: int, budget_tokens: int, cost: Callable[[int], int]
) -> list[int]:
    """Rows of `matrix` (unit vectors) most similar to the line, most similar first: at least MIN_SIMILARITY, at
    most `most`, their `cost`s within the budget. Only the 32 nearest are looked at: one argpartition, not a sort."""
    sims = matrix @ unit(np.asarray(line_vector, dtype=np.float32).reshape(-1))
    top = min(len(sims), 32)
    best = np.argpartition(-sims, top - 1)[:top]
    picked: list[int] = []
    used = 0
    for i in best[np.argsort(-sims[best], kind="stable")]:
        if sims[i] < MIN_SIMILARITY or len(picked) == most:
            break
        spent = cost(int(i))
        if used + spent <= budget_tokens:
            picked.append(int(i))
            used += spent
    return picked


def unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-9)
