"""Best of N: the extra reply states of a turn, and the critic's choice among the finished candidates.

`GenerationConfig.candidates` = N decodes N replies of one turn as one batch (batch.py holds them back until all of
two, or half of more, have ended, and drops the rest); `critic_pick` scores the ended ones with the reply critic
and chooses the best. The chosen reply is the only one the game sees streamed; the Done lists every candidate it
chose among, with its score, for tools and the studio page.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from ..personas.persona import Persona
from .critic import ReplyCritic
from .decode_loop import ReplyState
from .events import Candidate, Done
from .generation import GenerationConfig

Pick = Callable[[Sequence[ReplyState]], tuple[int, Done]]  # -> the chosen index and its Done, annotated


def candidate_configs(config: GenerationConfig) -> list[GenerationConfig]:
    """One config per candidate: candidate 0 is the plain turn; the others get their own seeds (seed + i)."""
    n = config.candidates
    if n <= 1 or config.greedy:  # greedy candidates would all say the same thing
        return [config]
    if config.seed is None:
        return [config] * n  # fresh random streams each
    return [config] + [config.with_(seed=(config.seed + i) % 2**63) for i in range(1, n)]


def critic_pick(
    critic: ReplyCritic, line: str, persona: Persona, started: float, line_vector: np.ndarray | None = None
) -> Pick:
    """The batch's pick function for one turn: the candidate the critic scores highest (`line_vector`: the
    line's sentence vector where the turn made one, so the pick does not encode the line again)."""

    def pick(states: Sequence[ReplyState]) -> tuple[int, Done]:
        dones = [s.done() for s in states]
        verdicts = critic.judge(
            line,
            persona,
            [d.text for d in dones],
            [d.fluency for d in dones],
            [d.finish_reason for d in dones],
            line_vector,
        )
        best = max(range(len(dones)), key=lambda i: (verdicts[i].score, -i))
        order = [best] + [i for i in range(len(dones)) if i != best]
        candidates = tuple(Candidate(dones[i].text, verdicts[i].score, verdicts[i].failed) for i in order)
        ready_ms = (time.perf_counter() - started) * 1000
        done = dones[best]
        return best, replace(done, candidates=candidates, timings=replace(done.timings, ttft_ms=ready_ms))

    return pick
