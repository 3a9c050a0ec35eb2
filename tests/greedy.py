"""Comparing greedy decodes the way they can be compared across CPUs: logits within a tolerance, tokens equal up
to the first near-tie.

The same 4-bit model rounds differently for a batch of 3 than for 1, for a long prefill than for a short one,
and from one CPU to another; where two tokens are nearly tied the argmax may flip and the sequences go their own
ways from there. Before that point every step must agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Largest difference allowed on the reference's TOP_K tokens. An int4 export prefills with its int8 graph
# (decoder_prefill.onnx) and decodes with the int4 one, so a reply's positions held from decoding differ from the
# same positions prefilled again (seen: up to ~1.0 on one CPU; int4 M=1 against int4 prefill was ~0.6). A real
# bug such as wrong positions on a reused cache moves them by 10 or more.
LOGIT_ATOL = 1.5
NEAR_TIE = 1.0  # a divergence is accepted where the reference's two choices were this close
TOP_K = 20  # the tokens a greedy choice is made among


class RecordingSampler:
    """Wraps a TokenSampler and keeps the logits of every step (what the greedy choice was made from)."""

    def __init__(self, sampler) -> None:
        self.sampler = sampler
        self.banned = sampler.banned
        self.logits: list[np.ndarray] = []

    def __call__(self, logits: np.ndarray, generated: Sequence[int] = ()) -> int:
        # the scores after the sampler's own adjustments (word bias, repetition penalty, repeat blocking): greedy
        # takes their argmax, so a near-tie is judged on them. On raw logits, a repeated word 1.5 ahead fell
        # within 0.01 of the next once divided by the repetition penalty, and its flip read as a bug.
        self.logits.append(self.sampler.adjust(logits, generated))
        return self.sampler(logits, generated)

    @property
    def fluency(self) -> float | None:
        """The wrapped sampler's (a Done carries it for the critic)."""
        return self.sampler.fluency


def record_samplers(monkeypatch, model) -> list[RecordingSampler]:
    """Every sampler `model` makes from now on records its steps; returned in the order they were made."""
    made: list[RecordingSampler] = []
    original = model.sampler

    def sampler(*args, **kwargs):
        made.append(RecordingSampler(original(*args, **kwargs)))
        return made[-1]

    monkeypatch.setattr(model, "sampler", sampler)
    return made


def assert_greedy_agrees(
    ref_tokens: Sequence[int],
    ref_logits: Sequence[np.ndarray],
    tokens: Sequence[int],
    logits: Sequence[np.ndarray],
    *,
    atol: float = LOGIT_ATOL,
    near_tie: float = NEAR_TIE,
) -> int:
    """Assert the invariant; return how many leading tokens are identical."""
    for i, (a, b) in enumerate(zip(ref_tokens, tokens, strict=False)):
        top = np.argsort(-ref_logits[i])[:TOP_K]
        diff = float(np.abs(ref_logits[i][top] - logits[i][top]).max())
        assert diff <= atol, f"step {i}: top logits differ by {diff:.3f} (tolerance {atol})"
        if a != b:
            gap = abs(float(ref_logits[i][a]) - float(ref_logits[i][b]))
            assert gap <= near_tie, (
                f"step {i}: tokens {a} and {b} differ, but were {gap:.3f} apart (no near-tie)"
            )
            return i
    assert len(ref_tokens) == len(tokens), "same tokens, different lengths: one stopped early for no reason"
    return len(tokens)
