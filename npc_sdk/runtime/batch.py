"""Batched decoding: sequences in different cache slots advance together, one onnxruntime call per step.

A sequence joins with `add` (its prompt is prefilled on its own slot, one call) and takes part from the next
`step`; it leaves as soon as its reply is done. Idle slots between active ones ride along in the call without
advancing, so nothing is ever moved in the cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .decode_loop import ReplyState
from .events import ReplyEvent
from .onnx_model import OnnxNpcModel


@dataclass
class _Member:
    state: ReplyState
    token: int  # sampled, not yet fed


class BatchGenerator:
    def __init__(self, model: OnnxNpcModel) -> None:
        self.model = model
        self.members: dict[int, _Member] = {}  # slot -> sequence decoding there

    def add(self, slot: int, embeds: np.ndarray, state: ReplyState) -> list[ReplyEvent]:
        """Prefill `embeds` [T, hidden] after what `slot` holds; the sequence decodes from the next step on."""
        logits = self.model.runner.run(slot, embeds[None])[0]
        token = state.accept(logits)
        if token is not None:
            self.members[slot] = _Member(state, token)
        return state.drain()

    def cancel(self, slot: int) -> None:
        self.members.pop(slot, None)

    def step(self) -> dict[int, list[ReplyEvent]]:
        """Feed every member its pending token in one call; return the new events per slot."""
        if not self.members:
            return {}
        slots = sorted(self.members)
        lo, hi = slots[0], slots[-1] + 1
        tokens = np.zeros(hi - lo, dtype=np.int64)
        advance = np.zeros(hi - lo, dtype=bool)
        for slot in slots:
            tokens[slot - lo] = self.members[slot].token
            advance[slot - lo] = True
        embeds = self.model.embed_ids(tokens)[:, None, :]  # [n, 1, hidden]
        logits = self.model.runner.run(lo, embeds, advance)
        events: dict[int, list[ReplyEvent]] = {}
        for slot in slots:
            member = self.members[slot]
            token = member.state.accept(logits[slot - lo])
            events[slot] = member.state.drain()
            if token is None:
                del self.members[slot]
            else:
                member.token = token
        return events
