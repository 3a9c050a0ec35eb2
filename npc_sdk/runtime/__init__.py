"""The torch-free inference runtime: a model folder run with onnxruntime, from pixels and text to streamed tokens.

Owns: the model folder and its manifest, the image/text encoders and fusion sessions, the KV cache and the
decoder runner, conversations with prefix reuse, batched decoding, the decode loop, sampling (word bias, banned
words), UTF-8-safe text streaming, tokenizers, image preprocessing, generation config and reply events.

May import: numpy, onnxruntime, tokenizers, pillow; `npc_sdk.errors`, `npc_sdk.weights`, and from
`npc_sdk.personas` only the persona model and prompt rendering (`persona`, `prompt`), never persona files or
the library. Never `npc_sdk.server`, never torch, transformers or `npc_export` (tests/test_layout.py checks).

Names are re-exported lazily, so importing a leaf module (`npc_sdk.runtime.generation`) loads nothing else.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "OnnxNpcModel": "onnx_model",
    "SlotSource": "slot_decode",
    "PreparedTurn": "turn",
    "prepare_turn": "turn",
    "TurnModel": "turn_model",
    "Conversation": "conversation",
    "BatchGenerator": "batch",
    "GenerationConfig": "generation",
    "Delta": "events",
    "Done": "events",
    "ReplyEvent": "events",
    "ModelFolder": "model_folder",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
