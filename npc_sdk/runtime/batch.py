"""Batched decoding: sequences in different cache slots advance together, one onnxruntime call per step.

A sequence joins with `add` and takes part from the step after its prompt is prefilled; it leaves as soon as its
reply is done. Idle slots between active ones ride along in the call without advancing, so nothing is ever moved in
the cache. With nobody else decoding, a prompt is prefilled in `add` in calls of up to ALONE_CALL positions;
otherwise `step` runs one chunk of PREFILL_CHUNK positions before each decode call, so a long persona's first turn
(2,000 positions, seconds on two cores) never stops the other NPCs' streams. Either way gives the same logits
(`chunk_size`), so a sequence gets the same tokens alone or batched.

Best of N: `add` with `candidates` (the other candidates' reply states) decodes N replies of one turn. They take
spare cache slots (as many as are free: under load a turn gets fewer candidates, never a wait); the prompt is
prefilled once and its KV state copied into them; every candidate samples from the same first logits with its own
random stream. Their events are held until enough of them have ended (`settle_at`: all of two, else half; the rest
are dropped); then `pick` chooses one, only its events come out (under the turn's own slot), the chosen
candidate's KV state is moved into that slot and the spare slots go back.

What every candidate has already said streams before the pick (`_agreed`): whichever is chosen starts with it,
since a candidate's streamed text is never taken back (text_stream.py holds back what a stop string, a banned word
or a clause cut could still change). The demo's "I can, lad." candidates agree on "I can," a few steps in, long
before half of them end; candidates that open differently ("It's safe" and "Yes, it's safe") stream nothing early.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from .best_of import Pick
from .decode_loop import ReplyState
from .decoder_runner import PREFILL_CHUNK, DecoderRunner
from .events import Delta, ReplyEvent

ALONE_CALL = 512  # positions a prefill call takes at most with nobody else decoding


def chunk_size(left: int, chunk: int) -> int:
    """Positions of a prompt's next call, `chunk` at most, but never leaving one position for a call of its own,
    which would run on decoder.onnx. Cut so, a prompt goes in on the prefill graph however it is cut,
    and one call gives what the chunks give, position for position (the scales are per position, and an attention
    row only adds exact zeros for the keys a shorter call lacks)."""
    return chunk - 1 if left == chunk + 1 else min(left, chunk)


def prefill_alone(runner: DecoderRunner, slot: int, embeds: np.ndarray) -> np.ndarray:
    """A prompt [T, hidden] into `slot` with nobody else decoding: calls of up to ALONE_CALL positions (wider calls
    are faster a position; the cap bounds the attention scores a call holds: 512 x 4,096 positions, ~75 MB); the
    last position's logits."""
    done = 0
    while done < len(embeds):
        size = chunk_size(len(embeds) - done, ALONE_CALL)
        logits = runner.run(slot, embeds[None, done : done + size])[0]
        done += size
    return logits


def settle_at(n: int) -> int:
    """How many of a turn's N candidates must have ended before the critic picks among them: all of two, else
    half. Waiting for the last made N = 4 cost 2.4x one whole reply on two cores (`npc-sdk bench --candidates`),
    and the ones still decoding are the longest, which read worst (docs/training.md: 39% acceptable at 4-7 words,
    11% at 12-15)."""
    return n if n <= 2 else max(2, (n + 1) // 2)


if TYPE_CHECKING:  # the model's stateless turn decodes through this module: a type, not an import at run time
    from .onnx_model import OnnxNpcModel


@dataclass
class _Group:
    home: int  # the turn's own slot: the chosen candidate ends up here
    slots: list[int]  # every candidate's slot, home first
    states: list[ReplyState]
    pick: Pick
    held: dict[int, list[ReplyEvent]] = field(default_factory=dict)  # slot -> events not yet handed out
    shown: str = ""  # the text every candidate agreed on, already handed out before the pick
    first_shown: float = 0.0  # when the first of it went out (perf_counter)


@dataclass
class _Pending:
    """A turn whose prompt is still being prefilled, chunk by chunk."""

    slot: int
    embeds: np.ndarray  # [T, hidden], the whole prompt
    done: int  # positions prefilled so far
    state: ReplyState
    candidates: Sequence[ReplyState]
    pick: Pick | None


@dataclass
class _Member:
    state: ReplyState
    token: int  # sampled, not yet fed
    group: _Group | None = None


class BatchGenerator:
    def __init__(self, model: OnnxNpcModel) -> None:
        self.model = model
        self.members: dict[int, _Member] = {}  # slot -> sequence decoding there
        self.groups: dict[int, _Group] = {}  # home slot -> its candidates
        self.pending: dict[int, _Pending] = {}  # slot -> its prompt's prefill, oldest first
        self.chunk = PREFILL_CHUNK  # positions a prefill call takes (the bench sets it huge to compare)

    @property
    def active(self) -> bool:
        """Something is still to prefill or decode: the caller keeps calling `step`."""
        return bool(self.members or self.pending)

    def add(
        self,
        slot: int,
        embeds: np.ndarray,
        state: ReplyState,
        *,
        candidates: Sequence[ReplyState] = (),
        pick: Pick | None = None,
    ) -> list[ReplyEvent]:
        """Prefill `embeds` [T, hidden] after what `slot` holds; the sequence decodes once that is done.

        With `candidates`, the turn decodes as best of N (see the module's note): until the choice, only what
        every candidate says comes out."""
        if candidates and pick is None:
            raise ValueError("best of N needs a pick function")
        self.pending[slot] = _Pending(slot, embeds, 0, state, candidates, pick)
        if self.members:
            return []  # its chunks interleave with the others' decode steps
        return self._prefill(slot, everything=True)

    def _prefill(self, slot: int, *, everything: bool) -> list[ReplyEvent]:
        """The next chunk (or all that is left, `prefill_alone`) of `slot`'s prompt; once it is all in, its first
        token."""
        job = self.pending[slot]
        if everything:
            logits = prefill_alone(self.model.runner, slot, job.embeds[job.done :])
            job.done = len(job.embeds)
        else:
            size = chunk_size(len(job.embeds) - job.done, self.chunk)
            logits = self.model.runner.run(slot, job.embeds[None, job.done : job.done + size])[0]
            job.done += size
        if job.done < len(job.embeds):
            return []
        del self.pending[slot]
        return self._begin(job, logits)

    def _begin(self, job: _Pending, logits: np.ndarray) -> list[ReplyEvent]:
        """The prompt is in: sample the first token of each candidate; the sequence decodes from now on."""
        slot, state = job.slot, job.state
        spare = self.model.try_acquire_slots(len(job.candidates)) if job.candidates else []
        extra = list(zip(spare, job.candidates, strict=False))
        if not extra:
            token = state.accept(logits)
            if token is not None:
                self.members[slot] = _Member(state, token)
            return state.drain()
        assert job.pick is not None
        prompt = self.model.cache.snapshot(slot)
        group = _Group(slot, [slot] + [s for s, _ in extra], [state] + [st for _, st in extra], job.pick)
        for s, st in zip(group.slots, group.states, strict=True):
            if s != slot:
                self.model.cache.restore(s, prompt)
            token = st.accept(logits)
            group.held[s] = st.drain()
            if token is not None:
                self.members[s] = _Member(st, token, group)
        self.groups[slot] = group
        return self._settle(group)

    def cancel(self, slot: int) -> None:
        self.pending.pop(slot, None)
        group = self.groups.pop(slot, None)
        for s in group.slots if group else [slot]:
            self.members.pop(s, None)
        if group is not None:
            self._release(group)

    def step(self) -> dict[int, list[ReplyEvent]]:
        """One chunk of the oldest waiting prefill (all of it when nobody decodes), then every member's pending
        token in one call; return the new events per slot."""
        events: dict[int, list[ReplyEvent]] = {}
        if self.pending:
            slot = next(iter(self.pending))
            first = self._prefill(slot, everything=not self.members)
            if first:
                events[slot] = first
        if not self.members:
            return events
        slots = sorted(self.members)
        lo, hi = slots[0], slots[-1] + 1
        tokens = np.zeros(hi - lo, dtype=np.int64)
        advance = np.zeros(hi - lo, dtype=bool)
        for slot in slots:
            tokens[slot - lo] = self.members[slot].token
            advance[slot - lo] = True
        embeds = self.model.embed_ids(tokens)[:, None, :]  # [n, 1, hidden]
        logits = self.model.runner.run(lo, embeds, advance)
        touched: list[_Group] = []
        for slot in slots:
            member = self.members[slot]
            token = member.state.accept(logits[slot - lo])
            if member.group is None:
                events[slot] = member.state.drain()
            else:
                member.group.held[slot] += member.state.drain()
                if member.group not in touched:
                    touched.append(member.group)
            if token is None:
                del self.members[slot]
            else:
                member.token = token
        for group in touched:
            out = self._settle(group)
            if out:
                events[group.home] = out
        return events

    def _settle(self, group: _Group) -> list[ReplyEvent]:
        """The chosen candidate's events once enough candidates have ended (`settle_at`); nothing before. The
        ones still decoding then are dropped: the batch no longer waits for its longest reply."""
        ended = [i for i, s in enumerate(group.slots) if s not in self.members]
        if len(ended) < settle_at(len(group.slots)):
            return self._agreed(group)
        for s in group.slots:
            self.members.pop(s, None)
        del self.groups[group.home]
        try:
            chosen, done = group.pick([group.states[i] for i in ended])
            slot = group.slots[ended[chosen]]
            if slot != group.home:
                self.model.cache.move(slot, group.home)
        finally:
            self._release(group)
        events: list[ReplyEvent] = []
        sent = len(group.shown)  # the chosen text starts with what went out already: only the rest follows
        for event in group.held[slot]:
            if isinstance(event, Delta) and len(event.snapshot) > sent:
                events.append(Delta(event.snapshot[sent:], event.snapshot))
                sent = len(event.snapshot)
        if group.first_shown:
            ttft_ms = (group.first_shown - group.states[0].started) * 1000
            done = replace(done, timings=replace(done.timings, ttft_ms=ttft_ms))
        return events + [done]

    def _agreed(self, group: _Group) -> list[ReplyEvent]:
        """A Delta of what all the candidates now agree on beyond what went out already (nothing if no more)."""
        agreed = os.path.commonprefix([state.stream.text[: state.stream.emitted] for state in group.states])
        if len(agreed) <= len(group.shown):
            return []
        delta = Delta(agreed[len(group.shown) :], agreed)
        group.shown = agreed
        group.first_shown = group.first_shown or time.perf_counter()
        return [delta]

    def _release(self, group: _Group) -> None:
        for s in group.slots[1:]:
            self.model.release_slot(s)

    @property
    def busy_slots(self) -> set[int]:
        """Slots a running turn holds, its candidates' included."""
        return set(self.members) | set(self.pending) | {s for g in self.groups.values() for s in g.slots}
