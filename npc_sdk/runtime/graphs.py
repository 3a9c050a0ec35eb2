"""ModelGraphs: a model folder opened for onnxruntime: sessions, embedding table, tokenizers and manifest facts."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from ..errors import NpcError
from ..personas.chat_format import CHATML, ChatFormat
from .decoder_runner import DecoderRunner
from .kv_cache import KVCache
from .manifest import Manifest
from .model_folder import ModelFolder
from .scene import TagSpec
from .text_tokens import encoder_tokenizer


def providers_for(device: str) -> list[str]:
    """onnxruntime providers for "cpu" or "cuda"; asking for CUDA where it is absent is an error, not a fallback."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise NpcError(
                "device 'cuda' asked for, but this onnxruntime has no CUDA provider (pip install .[gpu])"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise NpcError(f"device must be 'cpu' or 'cuda', got {device!r}")


def session_options(threads: int | None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    # Each session has its own thread pool, and idle pool threads spin for a while. Threads left spinning after a
    # call steal the cores from the next graph's call (measured: a 39-position prefill went from ~50 to ~110 ms
    # after the encoders; decode-step threads still spinning slowed the prefill after a step by 1.5x). So every
    # graph spins between its ops, which keeps a small op's threads awake, and stops when a call ends. Encoders
    # used to never spin: spinning within the call took a screenshot turn's first token from 113.5 to 108.1 ms
    # (median of 12 interleaved pairs, 2-core AVX2 VM) and the text encoder's 23-token call from 9.9 to 6.8 ms.
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


class ModelGraphs:
    """Everything read from the folder once and never changed: sessions, table, tokenizers, decoder and fusion facts."""

    def __init__(
        self,
        folder: ModelFolder,
        *,
        device: str = "cpu",
        threads: int | None = None,
        prefill_graph: bool = True,
    ) -> None:
        providers = providers_for(device)
        manifest = folder.manifest
        self.folder = folder
        self.device = device

        def session(component: str) -> ort.InferenceSession:
            options = session_options(threads)
            return ort.InferenceSession(str(folder.file(component)), options, providers=providers)

        self.image_session = session("image_encoder")
        self.text_session = session("text_encoder")
        self.fusion_session = session("fusion")
        self.decoder_session = session("decoder")
        # The integer-GEMM graph for prefills (export/build/quantize.py), where the export wrote one. Its u8 x s8
        # GEMM is a CPU kernel: on CUDA every call stays on decoder.onnx.
        wanted = prefill_graph and "decoder_prefill" in manifest.components and device == "cpu"
        self.prefill_session = session("decoder_prefill") if wanted else None
        # [vocab, hidden], read a row at a time
        self.table = np.load(folder.file("embeddings"), mmap_mode="r")
        self.tokenizer = Tokenizer.from_file(str(folder.file("tokenizer")))
        self.text_tokenizer = encoder_tokenizer(str(folder.file("text_tokenizer")))
        self._read_manifest(manifest)

    def _read_manifest(self, manifest: Manifest) -> None:
        dec = manifest.decoder
        # layers, kv_heads, head_dim, max_positions: what the KV buffers are shaped by
        self.decoder_dims = dec
        self.chat_format = ChatFormat.from_dict(dec.chat_format) if dec.chat_format else CHATML
        self.decoder_name = dec.source.name
        self.decoder_given = dec.source.given  # the GGUF/folder exported from; "" for the default
        self.eos_id = dec.eos_token_id
        self.vocab_size = dec.vocab
        self.hidden_size = dec.hidden
        self.fusion_config = manifest.fusion.config
        self.fusion_trained = manifest.fusion.trained
        self.tags = [TagSpec(t.name, t.words, t.kind, t.threshold) for t in manifest.fusion.tags]

    def new_cache(self, slots: int, max_len: int) -> KVCache:
        """KV buffers for `slots` sequences of up to `max_len` positions (never past the graph's rotary table)."""
        dec = self.decoder_dims
        return KVCache(dec.layers, dec.kv_heads, dec.head_dim, slots, min(max_len, dec.max_positions))

    def runner(self, cache: KVCache, *, prefill_graph: bool = True) -> DecoderRunner:
        """The decoder graphs bound to `cache`; `prefill_graph` False runs every call on decoder.onnx."""
        return DecoderRunner(
            self.decoder_session,
            cache,
            self.vocab_size,
            self.device,
            prefill_session=self.prefill_session if prefill_graph else None,
        )
