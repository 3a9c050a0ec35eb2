"""The decoder's prompt: persona, history and the player's line in the decoder's chat format, with prefix slots.

Layout (the pieces come from the decoder's chat template, personas/chat_format.py; SmolLM2's ChatML shown):

    <|im_start|>system\n{persona system prompt}<|im_end|>\n
    <|im_start|>assistant\n{greeting}<|im_end|>\n                         (when the persona has one)
    <|im_start|>user\n[prefix]{player}<|im_end|>\n<|im_start|>assistant\n{reply}<|im_end|>\n   (each past turn)
    <|im_start|>user\n[prefix]{player text}<|im_end|>\n<|im_start|>assistant\n                (this turn)

The K fusion vectors ("[prefix]") sit inside the user turn they belong to, after persona and history, so the
tokens before the current turn are the same from one turn to the next and their KV state can be reused.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from tokenizers import Tokenizer

from ..errors import InvalidInputError
from .chat_format import CHATML, ChatFormat
from .lore import LoreHit, explain_lore, lore_index
from .macros import expand
from .persona import Persona

MAX_TEXT_CHARS = 2000  # a player's line; longer ones are refused rather than silently cut
# System message + greeting, at most. A real card (a 5,000-8,000 character description) takes about 2,000 tokens;
# the rest of the default 4,096-position context holds the history, this turn and the reply.
MAX_PERSONA_TOKENS = 3072
log = logging.getLogger("npc_sdk.personas")


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


@dataclass(frozen=True)
class FittedPersona:
    ids: list[int]  # the persona block's tokens
    trimmed: tuple[
        str, ...
    ]  # what was cut to fit, in words ("3 of 5 examples", "description: 7,792 -> 5,210 chars")


_FITTED: OrderedDict[tuple, FittedPersona] = OrderedDict()


def _block_text(persona: Persona, fmt: ChatFormat) -> str:
    text = f"{fmt.system_start}{persona.system_prompt()}{fmt.system_end}"
    if persona.greeting:
        text += f"{fmt.assistant_start}{expand(persona.greeting, persona.name)}{fmt.assistant_end}"
    return text


def fit_persona(
    tokenizer: Tokenizer, persona: Persona, max_tokens: int = MAX_PERSONA_TOKENS, fmt: ChatFormat = CHATML
) -> FittedPersona:
    """The persona block within `max_tokens`, trimming in a fixed order when it does not fit.

    Order: example dialogue (last first), then the greeting, then the description, the scenario and the system
    prompt override, each cut at the last sentence end that fits. Nothing is cut from a persona that fits. What is
    fitted is the persona as the decoder reads it (`Persona.for_decoder`: a card's scaffolding taken out).
    """
    persona = persona.for_decoder()
    key = (id(tokenizer), fmt, persona.system_prompt(), persona.greeting, persona.name, max_tokens)
    if key in _FITTED:
        _FITTED.move_to_end(key)
        return _FITTED[key]

    def count(p: Persona) -> list[int]:
        return tokenizer.encode(_block_text(p, fmt), add_special_tokens=False).ids

    ids = count(persona)
    trimmed: list[str] = []
    current = persona
    if len(ids) > max_tokens and current.examples:
        keep = len(current.examples)
        while keep and len(ids) > max_tokens:
            keep -= 1
            current = replace(current, examples=current.examples[:keep])
            ids = count(current)
        trimmed.append(f"examples: kept {keep} of {len(persona.examples)}")
    if len(ids) > max_tokens and current.greeting:
        current = replace(current, greeting="")
        ids = count(current)
        trimmed.append("greeting: dropped")
    for name in ("description", "scenario", "system_prompt_override"):
        text = getattr(current, name)
        if len(ids) <= max_tokens or not text:
            continue
        ends = [m.end() for m in re.finditer(r"[.!?\n](?=\s|$)", text)] or [len(text)]
        lo, hi = 0, len(ends) - 1
        best = None
        while lo <= hi:  # the longest sentence prefix that fits
            mid = (lo + hi) // 2
            candidate = replace(current, **{name: text[: ends[mid]].rstrip()})
            if len(count(candidate)) <= max_tokens:
                best, lo = candidate, mid + 1
            else:
                hi = mid - 1
        if best is None:  # not even the first sentence: drop the field
            best = replace(current, **{name: ""})
        current = best
        ids = count(current)
        trimmed.append(f"{name}: {len(text):,} -> {len(getattr(current, name)):,} characters")
    if len(ids) > max_tokens:
        ids = ids[:max_tokens]  # name, personality and style alone over budget: a hard cut, said below
        trimmed.append(f"hard cut at {max_tokens} tokens")
    fitted = FittedPersona(ids, tuple(trimmed))
    if trimmed:
        log.warning(
            "persona %s does not fit in %d tokens; trimmed: %s",
            persona.id or persona.name,
            max_tokens,
            "; ".join(trimmed),
        )
    _FITTED[key] = fitted
    while len(_FITTED) > 64:
        _FITTED.popitem(last=False)
    return fitted


def persona_block(
    tokenizer: Tokenizer, persona: Persona, max_tokens: int = MAX_PERSONA_TOKENS, fmt: ChatFormat = CHATML
) -> list[int]:
    """The tokens every prompt of this persona starts with: system message and greeting (fitted, see above)."""
    return list(fit_persona(tokenizer, persona, max_tokens, fmt).ids)


def _scanned(persona: Persona, history: Sequence[Turn], text: str) -> list[str]:
    """The messages lore keys are looked for in: this line, then earlier ones, newest first (an entry's scan
    depth takes a prefix of it)."""
    depth = lore_index(persona).max_scan
    recent = [text]
    for turn in reversed(list(history)[-depth:] if depth else []):
        recent += [turn.reply, turn.user]
    return recent


def turn_context(tokenizer: Tokenizer, persona: Persona, history: Sequence[Turn], text: str) -> str:
    """Lore triggered by this line or the last `persona.lore_scan_turns` turns, plus post-history notes."""
    return persona.turn_context(
        _scanned(persona, history, text),
        lambda s: len(tokenizer.encode(s, add_special_tokens=False).ids),
        turn_number=len(history),
    )


def turn_lore(tokenizer: Tokenizer, persona: Persona, history: Sequence[Turn], text: str) -> list[LoreHit]:
    """The lore entries `turn_context` injects for the same turn, each with the keys that fired it."""
    return explain_lore(
        persona,
        _scanned(persona, history, text),
        lambda s: len(tokenizer.encode(s, add_special_tokens=False).ids),
        turn_number=len(history),
    )


def build_prompt(
    tokenizer: Tokenizer,
    persona: Persona,
    history: Sequence[Turn],
    text: str,
    prefix: np.ndarray | None = None,
    context: str = "",
    persona_tokens: int = MAX_PERSONA_TOKENS,
    fmt: ChatFormat = CHATML,
) -> Prompt:
    check_text(text)
    prompt = next_turn_opening(tokenizer, persona, history, persona_tokens, fmt)
    prompt.add_prefix(prefix)
    prompt.add_ids(tokenizer.encode(f"{context}{text}{fmt.generation}", add_special_tokens=False).ids)
    return prompt


def next_turn_opening(
    tokenizer: Tokenizer,
    persona: Persona,
    history: Sequence[Turn],
    persona_tokens: int = MAX_PERSONA_TOKENS,
    fmt: ChatFormat = CHATML,
) -> Prompt:
    """The positions every next turn's prompt starts with, whatever its line: the persona, the history and the
    header of the player's message (the fusion vectors and the line follow it)."""
    prompt = Prompt()
    prompt.add_ids(persona_block(tokenizer, persona, persona_tokens, fmt))
    for turn in history:
        _add_turn(prompt, tokenizer, turn, fmt)
    prompt.add_ids(tokenizer.encode(fmt.user_start, add_special_tokens=False).ids)
    return prompt


def _add_turn(prompt: Prompt, tokenizer: Tokenizer, turn: Turn, fmt: ChatFormat) -> None:
    """One finished turn of the history, as every prompt renders it."""
    prompt.add_ids(tokenizer.encode(fmt.user_start, add_special_tokens=False).ids)
    prompt.add_prefix(turn.prefix)
    text = f"{turn.context}{turn.user}{fmt.reply_start}{turn.reply}{fmt.assistant_end}"
    prompt.add_ids(tokenizer.encode(text, add_special_tokens=False).ids)


def turn_positions(tokenizer: Tokenizer, turn: Turn, fmt: ChatFormat = CHATML) -> int:
    """Positions one history turn takes in a prompt."""
    prompt = Prompt()
    _add_turn(prompt, tokenizer, turn, fmt)
    return prompt.length


def turn_prompt(
    tokenizer: Tokenizer,
    persona: Persona,
    history: Sequence[Turn],
    text: str,
    prefix: np.ndarray | None = None,
    scene_note: str = "",
    persona_tokens: int = MAX_PERSONA_TOKENS,
    fmt: ChatFormat = CHATML,
) -> Prompt:
    """The whole prompt of a turn rendered from scratch, with the lore and instructions it triggers and the
    note of what is in view (runtime/scene.py), which comes last, right before the player's words."""
    context = turn_context(tokenizer, persona, history, text) + scene_note
    return build_prompt(tokenizer, persona, history, text, prefix, context, persona_tokens, fmt)
