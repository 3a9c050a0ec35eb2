"""Conversation: one NPC dialogue on the runtime, feeding only what the decoder has not seen yet.

The conversation remembers exactly which positions its KV state holds (`fed`). A new turn renders the full
prompt, keeps the longest common prefix with `fed`, rewinds the cache to it and prefills the rest: usually just
the closing of the last reply and the new user block. A snapshot (prompt log + KV copy) restores it anywhere.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .decode_loop import stream_reply
from .events import Done, ReplyEvent
from .generation import GenerationConfig
from .images import ImageInput
from .kv_cache import KVSnapshot
from .persona import Persona
from .prompt import Prompt, Turn, build_prompt, check_text
from .runtime import OnnxNpcModel, SlotSource


@dataclass
class ConversationSnapshot:
    history: list[Turn]  # finished turns
    fed: Prompt  # what the KV state holds, position by position
    kv: KVSnapshot | None  # the decoder state itself (None: rebuilt on the next turn)


@dataclass
class Conversation:
    model: OnnxNpcModel
    persona: Persona
    history: list[Turn] = field(default_factory=list)
    fed: Prompt = field(default_factory=Prompt)
    slot: int | None = None
    parked: KVSnapshot | None = None  # KV state held in host memory while the slot is given back

    def _attach(self) -> int:
        if self.slot is None:
            self.slot = self.model.acquire_slot()
            if self.parked is not None:
                self.model.cache.restore(self.slot, self.parked)
                self.parked = None
            else:
                self.fed = Prompt()  # nothing held: the next turn prefills from the start
        return self.slot

    def park(self) -> None:
        """Copy the KV state out and give the slot back (for LRU eviction of idle dialogues)."""
        if self.slot is not None:
            self.parked = self.model.cache.snapshot(self.slot)
            self.model.release_slot(self.slot)
            self.slot = None

    def close(self) -> None:
        if self.slot is not None:
            self.model.release_slot(self.slot)
            self.slot = None
        self.parked = None

    def snapshot(self) -> ConversationSnapshot:
        kv = self.model.cache.snapshot(self.slot) if self.slot is not None else self.parked
        return ConversationSnapshot(list(self.history), Prompt(list(self.fed.segments)), kv)

    @classmethod
    def restore(cls, model: OnnxNpcModel, persona: Persona, snap: ConversationSnapshot) -> Conversation:
        fed = snap.fed if snap.kv is not None and snap.kv.length == snap.fed.length else Prompt()
        return cls(model, persona, list(snap.history), fed, None, snap.kv if fed.length else None)

    @property
    def cached_positions(self) -> int:
        return self.fed.length

    def stream(
        self,
        text: str,
        *,
        screenshot: ImageInput | None = None,
        config: GenerationConfig | None = None,
        use_prefix: bool = True,
        prefix: np.ndarray | None = None,
    ) -> Iterator[ReplyEvent]:
        """Yield the reply's events; the turn joins `history` only when its Done has been produced."""
        config = config or GenerationConfig()
        started = time.perf_counter()
        check_text(text)
        if use_prefix and prefix is None:
            prefix = self.model.fuse(text, self.persona, screenshot)
        target = build_prompt(
            self.model.tokenizer, self.persona, self.history, text, prefix if use_prefix else None
        )
        slot = self._attach()
        cache = self.model.cache
        common = min(target.common_prefix(self.fed), target.length - 1)  # at least one position to prefill
        cache.rewind(slot, common)
        done: Done | None = None
        try:
            for event in stream_reply(
                SlotSource(self.model, slot),
                self.model.embed(target.tail(common)),
                tokenizer=self.model.tokenizer,
                config=config,
                sampler=self.model.sampler(self.persona, config),
                eos_id=self.model.eos_id,
                started=started,
                cached_tokens=common,
                prompt_tokens=target.length,
            ):
                if isinstance(event, Done):
                    done = event
                yield event
        finally:
            # Whatever happened, `fed` must describe the cache: the prompt plus the reply tokens fed so far.
            held = int(cache.lengths[slot])
            generated = list(done.token_ids) if done else []
            if held >= target.length:
                self.fed = target.extended(generated[: held - target.length]) if done else target
                if not done:
                    cache.rewind(slot, target.length)
            else:
                self.fed = Prompt()
                cache.rewind(slot, 0)
        if done is not None:
            self.history.append(Turn(text, done.text, prefix if use_prefix else None))

    def reply(self, text: str, **kwargs) -> Done:
        *_, done = self.stream(text, **kwargs)
        assert isinstance(done, Done)
        return done

    def __enter__(self) -> Conversation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
