"""The decoder's prompt: persona, history and the player's line in SmolLM2's chat format, with prefix slots.

Layout (ChatML, as SmolLM2 was tuned on):

    <|im_start|>system\n{persona system prompt}<|im_end|>\n
    <|im_start|>assistant\n{greeting}<|im_end|>\n                         (when the persona has one)
    <|im_start|>user\n[prefix]{player}<|im_end|>\n<|im_start|>assistant\n{reply}<|im_end|>\n   (each past turn)
    <|im_start|>user\n[prefix]{player text}<|im_end|>\n<|im_start|>assistant\n                (this turn)

The K fusion vectors ("[prefix]") sit inside the user turn they belong to, after persona and history, so the
tokens before the current turn are the same from one turn to the next and their KV state can be reused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from tokenizers import Tokenizer

from ..errors import InvalidInputError
from .persona import Persona

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
MAX_TEXT_CHARS = 2000  # a player's line; longer ones are refused rather than silently cut


@dataclass
class Turn:
    user: str  # what the player said
    reply: str  # what the NPC answered
    prefix: np.ndarray | None = None  # [K, hidden] fusion vectors the decoder saw in this turn, if any
    context: str = ""  # lore and instructions shown just before the player's line in this turn


@dataclass
class Prompt:
    """Token ids and prefix blocks in decoder order; `embed` turns it into one inputs_embeds matrix."""

    segments: list[list[int] | np.ndarray] = field(default_factory=list)

    def add_ids(self, ids: Sequence[int]) -> None:
        if self.segments and isinstance(self.segments[-1], list):
            self.segments[-1].extend(ids)
        else:
            self.segments.append(list(ids))

    def add_prefix(self, prefix: np.ndarray | None) -> None:
        if prefix is not None and len(prefix):
            self.segments.append(np.asarray(prefix, dtype=np.float32))

    @property
    def length(self) -> int:
        return sum(len(s) for s in self.segments)

    @property
    def token_ids(self) -> list[int]:
        """The text tokens only (what `prompt_tokens` counts when no prefix is present)."""
        return [t for s in self.segments if isinstance(s, list) for t in s]

    def common_prefix(self, other: Prompt) -> int:
        """How many leading positions the two prompts share (tokens equal, prefix vectors identical)."""
        n = 0
        for a, b in zip(self.segments, other.segments, strict=False):
            if isinstance(a, list) and isinstance(b, list):
                same = next(
                    (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
                )
                n += same
                if same < len(a) or same < len(b):
                    return n
            elif isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b):
                n += len(a)
            else:
                return n
        return n

    def tail(self, start: int) -> Prompt:
        """The positions from `start` on."""
        out = Prompt()
        for seg in self.segments:
            if start >= len(seg):
                start -= len(seg)
                continue
            piece = seg[start:]
            start = 0
            if isinstance(piece, list):
                out.add_ids(piece)
            else:
                out.add_prefix(piece)
        return out

    def extended(self, ids: Sequence[int]) -> Prompt:
        out = Prompt([list(s) if isinstance(s, list) else s for s in self.segments])
        out.add_ids(ids)
        return out

    def embed(self, table: np.ndarray) -> np.ndarray:
        """[T, hidden] inputs_embeds: table rows for tokens, prefix vectors as they are."""
        rows = [table[np.asarray(s, dtype=np.int64)] if isinstance(s, list) else s for s in self.segments]
        if not rows:
            return np.zeros((0, table.shape[1]), dtype=np.float32)
        return np.concatenate(rows, axis=0).astype(np.float32, copy=False)


def check_text(text: object, field_name: str = "text") -> str:
    if not isinstance(text, str):
        raise InvalidInputError(field_name, f"must be text, got {type(text).__name__}")
    if not text.strip():
        raise InvalidInputError(field_name, "is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInputError(field_name, f"is {len(text)} characters, over the limit of {MAX_TEXT_CHARS}")
    return text


def persona_block(tokenizer: Tokenizer, persona: Persona) -> list[int]:
    """The tokens every prompt of this persona starts with: system message and greeting."""
    text = f"{IM_START}system\n{persona.system_prompt()}{IM_END}\n"
    if persona.greeting:
        text += f"{IM_START}assistant\n{persona.greeting}{IM_END}\n"
    return tokenizer.encode(text, add_special_tokens=False).ids


def turn_context(tokenizer: Tokenizer, persona: Persona, history: Sequence[Turn], text: str) -> str:
    """Lore triggered by this line or the last `persona.lore_scan_turns` turns, plus post-history notes."""
    recent = [text]
    for turn in list(history)[-persona.lore_scan_turns :] if persona.lore_scan_turns else []:
        recent += [turn.user, turn.reply]
    return persona.turn_context(recent, lambda s: len(tokenizer.encode(s, add_special_tokens=False).ids))


def build_prompt(
    tokenizer: Tokenizer,
    persona: Persona,
    history: Sequence[Turn],
    text: str,
    prefix: np.ndarray | None = None,
    context: str = "",
) -> Prompt:
    check_text(text)

    def enc(s: str) -> list[int]:
        return tokenizer.encode(s, add_special_tokens=False).ids

    prompt = Prompt()
    prompt.add_ids(persona_block(tokenizer, persona))
    for turn in history:
        prompt.add_ids(enc(f"{IM_START}user\n"))
        prompt.add_prefix(turn.prefix)
        prompt.add_ids(enc(f"{turn.context}{turn.user}{IM_END}\n{IM_START}assistant\n{turn.reply}{IM_END}\n"))
    prompt.add_ids(enc(f"{IM_START}user\n"))
    prompt.add_prefix(prefix)
    prompt.add_ids(enc(f"{context}{text}{IM_END}\n{IM_START}assistant\n"))
    return prompt


def turn_prompt(
    tokenizer: Tokenizer,
    persona: Persona,
    history: Sequence[Turn],
    text: str,
    prefix: np.ndarray | None = None,
    scene_note: str = "",
) -> Prompt:
    """The whole prompt of a turn rendered from scratch, with the lore and instructions it triggers and the
    note of what is in view (runtime/scene.py), which comes last, right before the player's words."""
    context = turn_context(tokenizer, persona, history, text) + scene_note
    return build_prompt(tokenizer, persona, history, text, prefix, context)
