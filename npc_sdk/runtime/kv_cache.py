"""Preallocated key/value buffers for the decoder, one row ("slot") per sequence, written in place by the graph.

Layout: one array [layers * 2, slots, kv_heads, max_len, head_dim] (key of layer i at 2*i, value at 2*i + 1).
Slots are the batch axis, so any run of consecutive slots is one contiguous block per layer: the decoder binds
`buffers[j, a:b]` as both past and present and GroupQueryAttention appends to it without a copy.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

import numpy as np

from ..errors import NpcError


@dataclass(frozen=True)
class KVSnapshot:
    """A copy of one sequence's cache: enough to restore it into any slot later (or in another process)."""

    length: int  # positions held
    data: np.ndarray  # [layers * 2, kv_heads, length, head_dim] float32

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)


def _lazy_zeros(shape: tuple[int, ...]) -> np.ndarray:
    """Zeroed float32 memory committed page by page as it is written.

    numpy asks the kernel for transparent huge pages on large arrays; then writing the first positions of one
    layer commits 2 MB at once, and an 8-slot cache became ~700 MB resident with a few short dialogues in it.
    Anonymous memory with huge pages switched off costs only the 4 KB pages that sequences actually reach.
    """
    nbytes = int(np.prod(shape)) * 4
    try:
        region = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_NOHUGEPAGE"):
            region.madvise(mmap.MADV_NOHUGEPAGE)
    except (OSError, AttributeError, ValueError):
        return np.zeros(shape, dtype=np.float32)
    return np.frombuffer(region, dtype=np.float32).reshape(shape)


class KVCache:
    def __init__(self, layers: int, kv_heads: int, head_dim: int, slots: int, max_len: int) -> None:
        self.max_len = max_len
        self.buffers = _lazy_zeros((layers * 2, slots, kv_heads, max_len, head_dim))
        self.lengths = np.zeros(slots, dtype=np.int64)  # positions written per slot

    @property
    def slots(self) -> int:
        return self.buffers.shape[1]

    def block(self, start: int, stop: int) -> list[np.ndarray]:
        """Contiguous views [stop - start, kv_heads, max_len, head_dim], one per past/present name in order."""
        return [self.buffers[j, start:stop] for j in range(self.buffers.shape[0])]

    def check_room(self, slot: int, new_positions: int) -> None:
        if self.lengths[slot] + new_positions > self.max_len:
            raise NpcError(
                f"sequence would reach {int(self.lengths[slot]) + new_positions} positions, over the cache's "
                f"{self.max_len}; trim the history"
            )

    def snapshot(self, slot: int, length: int | None = None) -> KVSnapshot:
        """A copy of the slot's first `length` positions (all it holds by default)."""
        n = int(self.lengths[slot]) if length is None else min(length, int(self.lengths[slot]))
        return KVSnapshot(n, self.buffers[:, slot, :, :n].copy())

    def restore(self, slot: int, snap: KVSnapshot) -> None:
        if snap.length > self.max_len:
            raise NpcError(f"snapshot holds {snap.length} positions, over the cache's {self.max_len}")
        self.buffers[:, slot, :, : snap.length] = snap.data
        self.lengths[slot] = snap.length

    def move(self, src: int, dst: int) -> None:
        """Copy a slot's written positions into another slot (used to keep active slots consecutive)."""
        n = int(self.lengths[src])
        self.buffers[:, dst, :, :n] = self.buffers[:, src, :, :n]
        self.lengths[dst] = n
        self.lengths[src] = 0

    def rewind(self, slot: int, length: int) -> None:
        """Forget positions from `length` on (they are overwritten by the next write)."""
        self.lengths[slot] = min(int(self.lengths[slot]), length)
