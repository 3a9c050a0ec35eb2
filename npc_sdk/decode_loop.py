"""The token-by-token loop shared by the torch reference and the onnxruntime runtime.

Both provide a `LogitsSource` (prefill a block of embeddings, then feed one token at a time); sampling, stop
handling, streaming and timing are this one function, so the two engines differ only in how logits are made.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Protocol

import numpy as np
from tokenizers import Tokenizer

from .events import Delta, Done, ReplyEvent, Timings, Usage
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
) -> Iterator[ReplyEvent]:
    """Prefill `embeds`, then sample until EOS, a stop string or max_tokens; yield Deltas and one Done."""
    started = time.perf_counter() if started is None else started
    stream = TextStream(tokenizer, config.stop)
    generated: list[int] = []
    logits = source.prefill(embeds)
    first_at = last_at = time.perf_counter()
    finish: str = "length"
    while True:
        token = sampler(logits, generated)
        generated.append(token)
        last_at = time.perf_counter()
        if len(generated) == 1:
            first_at = last_at
        if token == eos_id:
            finish = "stop"
            break
        delta = stream.push(token)
        if delta:
            yield Delta(delta, stream.text[: stream.emitted])
        if stream.stopped:
            finish = "stop"
            break
        if len(generated) >= config.max_tokens:
            break
        logits = source.step(token)
    tail = stream.finish()
    if tail:
        yield Delta(tail, stream.text[: stream.emitted])
    decode_s = last_at - first_at
    yield Done(
        text=stream.text[: stream.emitted],
        finish_reason=finish,  # type: ignore[arg-type]
        usage=Usage(prompt_tokens=len(embeds), completion_tokens=len(generated), cached_tokens=cached_tokens),
        timings=Timings(
            ttft_ms=(first_at - started) * 1000,
            total_ms=(last_at - started) * 1000,
            decode_tokens_per_second=(len(generated) - 1) / decode_s if decode_s > 0 else 0.0,
        ),
        token_ids=tuple(generated),
    )
