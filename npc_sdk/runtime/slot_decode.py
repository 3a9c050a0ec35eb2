"""Decoding on the runtime's cache slots: the decode loop's view of one slot, and a prepared turn decoded on one
(alone, or as best of N with its candidates on spare slots beside it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from .batch import BatchGenerator, prefill_alone
from .decode_loop import run_reply
from .events import ReplyEvent
from .turn import PreparedTurn

if (
    TYPE_CHECKING
):  # the model decodes its stateless turns through this module: a type, not an import at run time
    from .onnx_model import OnnxNpcModel


class SlotSource:
    """The decode-loop interface over one cache slot."""

    def __init__(self, model: OnnxNpcModel, slot: int) -> None:
        self.model = model
        self.slot = slot

    def prefill(self, embeds: np.ndarray) -> np.ndarray:
        return prefill_alone(self.model.runner, self.slot, embeds)

    def step(self, token_id: int) -> np.ndarray:
        return self.model.runner.run(self.slot, self.model.embed_ids([token_id])[None])[0]


def decode_turn(model: OnnxNpcModel, slot: int, turn: PreparedTurn) -> Iterator[ReplyEvent]:
    """The turn's reply on `slot` (what it holds is kept), or the best of N on spare slots beside it."""
    if not turn.extra_states:
        yield from run_reply(SlotSource(model, slot), turn.embeds, turn.state)
        return
    batch = BatchGenerator(model)
    try:
        yield from batch.add(slot, turn.embeds, turn.state, candidates=turn.extra_states, pick=turn.pick)
        while batch.active:
            for events in batch.step().values():
                yield from events
    finally:
        if slot in batch.groups:  # the caller stopped early: the spare slots go back
            batch.cancel(slot)
