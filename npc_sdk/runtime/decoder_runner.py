"""One onnxruntime call of the decoder over a run of cache slots, with everything bound in place.

Decode steps run decoder.onnx; calls of more than one new position run decoder_prefill.onnx where the folder has
one (the same I/O, a kernel built for wide inputs). Both bind the same KV buffers.

The KV buffers are bound as both past and present (GroupQueryAttention appends into them), and logits land in
a preallocated array; the IOBinding for a run of slots is made once and reused, so a decode step copies
nothing but the new token's embedding in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnxruntime as ort

from .kv_cache import KVCache

# While other slots decode, a prompt is prefilled this many positions per call, each call between two of their
# decode steps (batch.py): ~35 ms a chunk on two AVX-512 cores (~50 ms on AVX2 only), so a long prefill never holds
# other streams for longer than that. Alone, a prompt goes in in one call: fewer, wider calls are faster.
PREFILL_CHUNK = 32


class DecoderRunner:
    def __init__(
        self,
        session: ort.InferenceSession,
        cache: KVCache,
        vocab: int,
        device: str = "cpu",
        *,
        prefill_session: ort.InferenceSession | None = None,
    ) -> None:
        """`prefill_session`, when given, runs every call of more than one new position (same inputs and outputs
        as `session`, which then runs only decode steps): a different kernel suits wide calls
        (export/build/quantize.py). Which graph runs depends only on the call's length, never on what else is in
        the batch, so a sequence gets the same tokens alone or batched."""
        self.session = session
        self.prefill_session = prefill_session
        self.cache = cache
        self.device = device
        names = [i.name for i in session.get_inputs()]
        self.past_names = [n for n in names if n.startswith("past_key_values.")]
        self.present_names = [o.name for o in session.get_outputs() if o.name.startswith("present.")]
        self.logits = np.zeros((cache.slots, vocab), dtype=np.float32)
        # keyed by (first slot, stop, the session's id): each graph needs its own binding of the same buffers
        self._bindings: dict[tuple[int, int, int], ort.IOBinding] = {}
        self._keep: dict[tuple[int, int, int], list[ort.OrtValue]] = {}

    def _binding(self, session: ort.InferenceSession, start: int, stop: int) -> ort.IOBinding:
        key = (start, stop, id(session))
        binding = self._bindings.get(key)
        if binding is None:
            binding = session.io_binding()
            values = [ort.OrtValue.ortvalue_from_numpy(view) for view in self.cache.block(start, stop)]
            for past, present, value in zip(self.past_names, self.present_names, values, strict=True):
                binding.bind_ortvalue_input(past, value)
                binding.bind_ortvalue_output(present, value)
            logits = ort.OrtValue.ortvalue_from_numpy(self.logits[start:stop])
            binding.bind_ortvalue_output("logits", logits)
            self._bindings[key] = binding
            self._keep[key] = [*values, logits]
        return binding

    def run(self, start: int, embeds: np.ndarray, advance: Sequence[bool] | None = None) -> np.ndarray:
        """Feed embeds [n, S, hidden] to slots start..start+n-1 after what each holds; return logits [n, vocab].

        Rows with `advance` False ride along (their output is ignored and their length does not grow): that lets
        a decode step cover a run of slots with idle ones in between without moving any cache.
        """
        n, s = embeds.shape[0], embeds.shape[1]
        stop = start + n
        lengths = self.cache.lengths[start:stop].copy()
        for row in range(n):
            self.cache.check_room(start + row, s)
        total = int(lengths.max()) + s
        mask = (np.arange(total)[None, :] < (lengths + s)[:, None]).astype(
            np.int64
        )  # [n, total], right-padded
        positions = lengths[:, None] + np.arange(s)[None, :]  # [n, S]
        session = self.prefill_session if s > 1 and self.prefill_session is not None else self.session
        binding = self._binding(session, start, stop)
        binding.bind_cpu_input("inputs_embeds", np.ascontiguousarray(embeds, dtype=np.float32))
        binding.bind_cpu_input("attention_mask", mask)
        binding.bind_cpu_input("position_ids", positions.astype(np.int64))
        session.run_with_iobinding(binding)
        grow = np.full(n, s) if advance is None else np.where(np.asarray(advance), s, 0)
        self.cache.lengths[start:stop] = lengths + grow
        return self.logits[start:stop]
