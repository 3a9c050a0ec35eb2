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

import numpy as np

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
        if not new:
            return
        vecs = np.asarray(self._embed(new), dtype=np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True) + 1e-9
        need = self.count + len(new)
        if need > self._matrix.shape[0]:  # grow by doubling: appending stays amortised O(1) a turn
            grown = np.zeros((max(need, 2 * self._matrix.shape[0], 64), vecs.shape[1]), dtype=np.float32)
            if self.count:
                grown[: self.count] = self._matrix[: self.count]
            self._matrix = grown
        self._matrix[self.count : need] = vecs
        self._keys.extend(new)

    def recall(
        self, line_vector: np.ndarray, upto: int, budget_tokens: int, count_tokens: Callable[[str], int]
    ) -> list[int]:
        """Indices (ascending) of the turns before `upto` most similar to the line, within the token budget."""
        upto = min(upto, self.count)
        if upto <= 0 or budget_tokens <= 0:
            return []
        query = np.asarray(line_vector, dtype=np.float32).reshape(-1)
        query = query / (np.linalg.norm(query) + 1e-9)
        sims = self._matrix[:upto] @ query
        best = np.argpartition(-sims, min(upto, 32) - 1)[: min(upto, 32)]  # the few worth looking at
        picked: list[int] = []
        used = 0
        for i in best[np.argsort(-sims[best], kind="stable")]:
            if sims[i] < MIN_SIMILARITY or len(picked) == MAX_RECALLED:
                break
            cost = count_tokens(self._keys[i]) + 16  # the quotes and the note's words
            if used + cost <= budget_tokens:
                picked.append(int(i))
                used += cost
        return sorted(picked)
