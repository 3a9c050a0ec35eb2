"""The token-by-token logic shared by the torch reference, the onnxruntime runtime and batched decoding.

`ReplyState` turns each step's logits into a token, text deltas and, at the end, one Done; the engines differ
only in how logits are made (`LogitsSource`), and a batch simply holds one ReplyState per sequence.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Protocol

import numpy as np
from tokenizers import Tokenizer

from .events import Delta, Done, ReplyEvent, SeenTag, Timings, Usage
from .generation import GenerationConfig
from .sampling import TokenSampler
from .text_stream import TextStream


class LogitsSource(Protocol):
    def prefill(self, embeds: np.ndarray) -> np.ndarray:
        """Read [T, hidden] embeddings after the current state; return the last position's logits [vocab]."""
        ...

    def step(self, token_id: int) -> np.ndarray:
        """Read one token; return its logits [vocab]."""
        ...


class ReplyState:
    """One reply being decoded: sampler, stop handling, streamed text, counts and timings."""

    def __init__(
        self,
        *,
        tokenizer: Tokenizer,
        config: GenerationConfig,
        sampler: TokenSampler,
        eos_id: int,
        prompt_tokens: int,
        cached_tokens: int = 0,
        started: float | None = None,
        seen: tuple[SeenTag, ...] = (),
    ) -> None:
        self.config = config
        self.seen = seen
        self.sampler = sampler
        self.eos_id = eos_id
        self.prompt_tokens = prompt_tokens
        self.cached_tokens = cached_tokens
        self.started = time.perf_counter() if started is None else started
        self.stream = TextStream(
            tokenizer,
            config.stop,
            sampler.banned.words if sampler.banned else (),
            config.max_sentences,
            config.max_clauses,
        )
        self.generated: list[int] = []
        self.first_at = self.last_at = 0.0
        self.finish_reason: str | None = None  # set when the reply is over
        self.events: list[ReplyEvent] = []  # produced, not yet handed out

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def accept(self, logits: np.ndarray) -> int | None:
        """Pick the next token from `logits`; return it if it must be fed to the decoder, None when done."""
        token = self.sampler(logits, self.generated)
        self.generated.append(token)
        self.last_at = time.perf_counter()
        if len(self.generated) == 1:
            self.first_at = self.last_at
        if token == self.eos_id:
            self._finish("stop")
            return None
        delta = self.stream.push(token)
        if delta:
            self.events.append(Delta(delta, self.stream.text[: self.stream.emitted]))
        if self.stream.stopped:
            self._finish("stop")
            return None
        if len(self.generated) >= self.config.max_tokens:
            self._finish("length")
            return None
        return token

    def _finish(self, reason: str) -> None:
        self.finish_reason = reason
        tail = self.stream.finish()
        if tail:
            self.events.append(Delta(tail, self.stream.text[: self.stream.emitted]))
        self.events.append(self.done())

    def done(self) -> Done:
        decode_s = self.last_at - self.first_at
        return Done(
            text=self.stream.text[: self.stream.emitted],
            finish_reason=self.finish_reason or "length",  # type: ignore[arg-type]
            usage=Usage(
                prompt_tokens=self.prompt_tokens,
                completion_tokens=len(self.generated),
                cached_tokens=self.cached_tokens,
            ),
            timings=Timings(
                ttft_ms=(self.first_at - self.started) * 1000,
                total_ms=(self.last_at - self.started) * 1000,
                decode_tokens_per_second=(len(self.generated) - 1) / decode_s if decode_s > 0 else 0.0,
            ),
            token_ids=tuple(self.generated),
            seen=self.seen,
            fluency=self.sampler.fluency,
        )

    def drain(self) -> list[ReplyEvent]:
        events, self.events = self.events, []
        return events


def stream_reply(
    source: LogitsSource,
    embeds: np.ndarray,
    *,
    tokenizer: Tokenizer,
    config: GenerationConfig,
    sampler: TokenSampler,
    eos_id: int,
    started: float | None = None,
    cached_tokens: int = 0,
    prompt_tokens: int | None = None,
    seen: tuple[SeenTag, ...] = (),
) -> Iterator[ReplyEvent]:
    """Prefill `embeds`, then sample until EOS, a stop string or max_tokens; yield Deltas and one Done."""
    state = ReplyState(
        tokenizer=tokenizer,
        config=config,
        sampler=sampler,
        eos_id=eos_id,
        prompt_tokens=len(embeds) + cached_tokens if prompt_tokens is None else prompt_tokens,
        cached_tokens=cached_tokens,
        started=started,
        seen=seen,
    )
    yield from run_reply(source, embeds, state)


def run_reply(source: LogitsSource, embeds: np.ndarray, state: ReplyState) -> Iterator[ReplyEvent]:
    """Drive `state` to the end of its reply on one sequence."""
    token = state.accept(source.prefill(embeds))
    yield from state.drain()
    while token is not None:
        token = state.accept(source.step(token))
        yield from state.drain()


def timed_greedy(source: LogitsSource, embeds: np.ndarray, new_tokens: int) -> tuple[float, float]:
    """(ms to the first token, decode tokens/s) of plain greedy decoding that ignores EOS: the benchmark loop."""
    start = time.perf_counter()
    token = int(np.argmax(source.prefill(embeds)))
    first = time.perf_counter()
    for _ in range(new_tokens - 1):
        token = int(np.argmax(source.step(token)))
    end = time.perf_counter()
    return (first - start) * 1000, (new_tokens - 1) / (end - first)
