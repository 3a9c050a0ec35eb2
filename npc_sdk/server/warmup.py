"""Warm-ups: one tiny turn through every graph before serving, and persona blocks prefilled while the scheduler idles.

Neither changes a reply; both move a cost away from a player's first turn.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from ..personas.persona import Example, LoreEntry, Persona
from ..runtime.batch import chunk_size
from ..runtime.generation import GenerationConfig
from ..runtime.onnx_model import OnnxNpcModel
from ..runtime.slot_decode import SlotSource

log = logging.getLogger("npc_sdk.server")

# The server's own (the demo module is the CLI's): a card with one of each part (greeting, example, role words,
# lore), so the warm-up turn takes the paths a player's first turn takes.
WARM_UP_PERSONA = Persona(
    name="Warden",
    description="A watchful guard who keeps the town gate.",
    personality="curt, dutiful",
    greeting="Halt. State your business.",
    examples=[Example("May I pass?", "Show me your writ first.")],
    role_words={"gate": 1.5},
    lore=[LoreEntry(["writ", "papers"], "Travellers need a writ from the mayor to pass the gate.")],
)
# under npc_sdk/assets/scenes: a real picture, so the image encoder runs as it will for a player
WARM_UP_SCREENSHOT = "meadow_slimes.png"


def warm_graphs(model: OnnxNpcModel) -> None:
    """One tiny turn through every graph: onnxruntime's first runs allocate and plan (~0.5 s), not a player's."""
    screenshot = Path(str(resources.files("npc_sdk") / "assets" / "scenes" / WARM_UP_SCREENSHOT))
    model.reply(
        "Hello.",
        persona=WARM_UP_PERSONA,
        screenshot=screenshot,
        config=GenerationConfig(max_tokens=2, temperature=0.0),
    )


class PersonaWarmer:
    """Persona blocks to prefill into the model's shared persona KV cache while nothing else runs, so a long card's
    first turn does not pay for its ~2,000-position block (seconds on two cores). Scheduler thread only."""

    CHUNK = 256  # positions prefilled per idle loop iteration: a turn arriving waits at most one chunk

    def __init__(self, model: OnnxNpcModel) -> None:
        self.model = model
        self._to_warm: deque[Persona] = deque()
        # the block being prefilled: (persona, block ids, slot, positions done)
        self._warming: tuple[Persona, list[int], int, int] | None = None

    def queue(self, personas: Sequence[Persona]) -> int:
        """Add personas to warm (as many as the cache holds); returns how many wait."""
        self._to_warm.extend(personas[: self.model.persona_kv_entries])
        return len(self._to_warm)

    @property
    def pending(self) -> int:
        """Persona blocks still to prefill."""
        return len(self._to_warm) + (self._warming is not None)

    def step(self, *, turns_waiting: bool) -> None:
        """One chunk of a persona block's prefill; given up (the slot freed) as soon as turns are waiting."""
        model = self.model
        if self._warming is not None and turns_waiting:
            persona, _, slot, _ = self._warming
            model.release_slot(slot)
            self._to_warm.append(persona)  # again later
            self._warming = None
            return
        if self._warming is None:
            if not self._to_warm or turns_waiting or model.free_slots == 0:
                return
            persona = self._to_warm.popleft()
            block = model.persona_block(persona)
            if model.cached_persona_kv(block) is not None:
                return
            self._warming = (persona, block, model.acquire_slot(), 0)
        persona, block, slot, done = self._warming
        try:
            chunk = block[done : done + chunk_size(len(block) - done, self.CHUNK)]
            SlotSource(model, slot).prefill(model.embed_ids(chunk))
        except BaseException:  # a warm-up is an optimisation: never let it take the server down
            log.exception("persona warm-up failed")
            model.release_slot(slot)
            self._warming = None
            return
        done += len(chunk)
        if done < len(block):
            self._warming = (persona, block, slot, done)
            return
        model.remember_persona_kv(block, slot)
        model.release_slot(slot)
        self._warming = None
        log.info("persona %s warmed: %d positions of KV ready", persona.id or persona.name, len(block))
