"""SlotPool: the KV cache's slots handed out to turns, and the persona blocks' KV state shared between sessions."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from ..errors import NpcError
from .kv_cache import KVCache, KVSnapshot


class SlotPool:
    def __init__(self, cache: KVCache) -> None:
        self.cache = cache
        self.free = list(range(cache.slots))  # sorted: the lowest free slot is handed out first
        # KV state of persona blocks (system message + greeting), shared by every session of that persona: a new
        # session's first turn then prefills only its own line (~25 positions instead of ~130).
        self.persona_kv: OrderedDict[tuple[int, ...], KVSnapshot] = OrderedDict()
        self.persona_kv_entries = 16
        # Long cards make persona blocks of ~2,000 positions (~90 MB of KV each): bound the bytes too.
        self.persona_kv_bytes = 256 * 1024 * 1024

    # ---- slots -------------------------------------------------------------------------------------------
    def acquire_slot(self) -> int:
        if not self.free:
            raise NpcError(f"all {self.cache.slots} decoder slots are in use")
        slot = self.free.pop(0)
        self.cache.lengths[slot] = 0
        return slot

    def try_acquire_slots(self, n: int) -> list[int]:
        """Up to `n` free slots (fewer, or none, when the pool is short): best of N takes what is spare."""
        return [self.acquire_slot() for _ in range(min(n, len(self.free)))]

    def release_slot(self, slot: int) -> None:
        self.cache.lengths[slot] = 0
        self.free.append(slot)
        self.free.sort()  # in place: the façade hands this very list out as `_free_slots`

    @property
    def free_slots(self) -> int:
        return len(self.free)

    # ---- persona KV (LRU) --------------------------------------------------------------------------------
    def cached_persona_kv(self, block: Sequence[int]) -> KVSnapshot | None:
        snap = self.persona_kv.get(tuple(block))
        if snap is not None:
            self.persona_kv.move_to_end(tuple(block))
        return snap

    def remember_persona_kv(self, block: Sequence[int], slot: int) -> bool:
        """Keep the KV of `block` from `slot`, which must start with it; False while the slot holds less of it."""
        key = tuple(block)
        if key in self.persona_kv:
            return True
        if self.cache.lengths[slot] < len(key):
            return False
        self.persona_kv[key] = self.cache.snapshot(slot, len(key))
        while len(self.persona_kv) > 1 and (
            len(self.persona_kv) > self.persona_kv_entries
            or sum(s.nbytes for s in self.persona_kv.values()) > self.persona_kv_bytes
        ):
            self.persona_kv.popitem(last=False)
        return True
