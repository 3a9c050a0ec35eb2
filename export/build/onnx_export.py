"""`npc-sdk export`: the reference model -> a model folder that runs with onnxruntime alone.

Writes image_encoder.onnx, text_encoder.onnx (v_T and v_R), fusion.onnx, decoder.onnx, embeddings.npy, the two
tokenizers and manifest.json (format version, sources, dimensions, I/O names and shapes, precision, opset, and the
sha256 of every file). Nothing in it depends on time or randomness, so the same inputs give the same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
import transformers

from npc_sdk import __version__
from npc_sdk.runtime.generation import GenerationConfig
from npc_sdk.runtime.images import GRID, IMAGE_HEIGHT, IMAGE_WIDTH, PAD_VALUE, PIXEL_MEAN, PIXEL_STD
from npc_sdk.runtime.manifest import (
    DECODER_BLOCK_SIZE,
    DecoderSection,
    FusionSection,
    Manifest,
    TagEntry,
    check_block_size,
)
from npc_sdk.runtime.model_folder import MANIFEST, PRECISIONS
from npc_sdk.runtime.text_tokens import ROLE_MAX_TOKENS, TEXT_MAX_TOKENS
from npc_sdk.weights import DECODER, IMAGE_ENCODER, TEXT_ENCODER, local_path, sha256_file

from ..model.fusion import CoAttentionFusion, FusionConfig
from ..model.reference import NpcModel
from .onnx_decoder import OPSET, DecoderDims, build_decoder, dims_from_config, io_names
from .quantize import quantize_decoder, quantize_prefill

ENCODER_OPSET = 17  # the torch exporter's well-trodden opset for the encoders and fusion
PREFILL_FILE = "decoder_prefill.onnx"  # the integer-GEMM graph for prefills (quantize.py explains)
MAX_POSITIONS = 4096  # rotary cache length of decoder.onnx: the longest dialogue a session may reach
# A protobuf message cannot be serialised past 2 GiB: a decoder whose weights come near that (about 450M parameters
# in fp32, 1.7B in int8) keeps them in decoder.onnx.data beside the graph, as onnxruntime reads by itself.
EXTERNAL_DATA_BYTES = 1 << 30


class TextEncoderOnnx(torch.nn.Module):
    def __init__(self, model: NpcModel) -> None:
        super().__init__()
        self.encoder = model.text_encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        return self.encoder(input_ids, attention_mask)


def _torch_export(module: torch.nn.Module, args: tuple, path: Path, names_in, names_out, dynamic) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about the static 256x448 padding arithmetic
        torch.onnx.export(
            module.eval(),
            args,
            str(path),
            dynamo=False,
            opset_version=ENCODER_OPSET,
            input_names=names_in,
            output_names=names_out,
            dynamic_axes=dynamic,
        )


def export_fusion(fusion: CoAttentionFusion, path: Path) -> None:
    cfg = fusion.cfg
    _torch_export(
        fusion,
        (
            torch.zeros(2, cfg.image_cells, cfg.image_dim),
            torch.zeros(2, 4 * cfg.image_cells, cfg.mid_dim),
            torch.ones(2),
            torch.zeros(2, 8, cfg.text_dim),
            torch.ones(2, 8),
            torch.zeros(2, cfg.text_dim),
        ),
        path,
        ["v_I", "v_mid", "has_image", "v_T", "text_mask", "v_R"],
        ["prefix", "tag_probs"],
        {
            "v_I": {0: "batch"},
            "v_mid": {0: "batch"},
            "has_image": {0: "batch"},
            "v_T": {0: "batch", 1: "tokens"},
            "text_mask": {0: "batch", 1: "tokens"},
            "v_R": {0: "batch"},
            "prefix": {0: "batch"},
            "tag_probs": {0: "batch"},
        },
    )


def save_decoder(graph: onnx.ModelProto, path: Path) -> None:
    weights = sum(len(t.raw_data) for t in graph.graph.initializer)
    if weights < EXTERNAL_DATA_BYTES:
        onnx.save(graph, str(path))
        return
    onnx.save(
        graph,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=path.name + ".data",
        size_threshold=1024,
    )


def export_model(
    out: Path,
    precision: str = "int4",
    *,
    model: NpcModel | None = None,
    fusion_weights: Path | None = None,
    decoder: str | Path | None = None,
    block_size: int = DECODER_BLOCK_SIZE,
    log: Callable[[str], None] = print,
) -> Path:
    """Export into `out` (replaced atomically when complete); return the folder.

    `decoder`: a GGUF file or Hugging Face folder of the Llama or Qwen2 family instead of the embedded SmolLM2.
    `block_size`: weights per scale in decoder.onnx (int8 and int4; quantize.py)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    check_block_size(block_size, precision)
    model = model or NpcModel.load(fusion_weights=fusion_weights, decoder=decoder, log=log)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        manifest = _write_folder(tmp, model, precision, block_size, log)
        (tmp / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"wrote {out} ({precision})")
    return out


def _write_folder(
    folder: Path, model: NpcModel, precision: str, block_size: int, log: Callable[[str], None]
) -> Manifest:
    """Write every file of the folder and return its manifest (the caller writes manifest.json)."""
    _export_encoders(folder, model, log)
    log(f"[4/5] decoder -> decoder.onnx ({precision})")
    dims = _export_decoder(folder, model, precision, block_size, log)
    log("[5/5] embeddings, tokenizers, manifest")
    table = _write_embeddings_and_tokenizers(folder, model, precision)
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    return Manifest(
        precision=precision,
        opset={"decoder": OPSET, "encoders": ENCODER_OPSET},
        producer=_producer(),
        sources=_sources(model),
        fusion=_fusion_section(model),
        decoder=_decoder_section(model, dims),
        preprocessing=_preprocessing(),
        components={
            **_encoder_components(model.fusion.cfg, dims),
            **_decoder_components(dims, precision, block_size),
            "embeddings": {
                "filename": "embeddings.npy",
                "dtype": str(table.dtype),
                "shape": list(table.shape),
            },
            "tokenizer": {"filename": "tokenizer.json"},
            "text_tokenizer": {"filename": "text_tokenizer.json"},
        },
        search={k: v for k, v in GenerationConfig().__dict__.items() if k not in ("seed", "stop")},
        files={name: sha256_file(folder / name) for name in files},
    )


def _export_encoders(folder: Path, model: NpcModel, log: Callable[[str], None]) -> None:
    """image_encoder.onnx, text_encoder.onnx (v_T and v_R) and fusion.onnx, by the torch exporter."""
    log("[1/5] image encoder -> image_encoder.onnx")
    _torch_export(
        model.image_encoder,
        (torch.zeros(1, 3, IMAGE_HEIGHT, IMAGE_WIDTH),),
        folder / "image_encoder.onnx",
        ["pixels"],
        ["v_I", "v_mid"],
        {"pixels": {0: "batch"}, "v_I": {0: "batch"}, "v_mid": {0: "batch"}},
    )
    log("[2/5] text + role encoder -> text_encoder.onnx")
    ids = torch.ones(2, 8, dtype=torch.int64)  # dummy batch and length >= 2: size-1 dims would be specialised
    _torch_export(
        TextEncoderOnnx(model),
        (ids, torch.ones_like(ids)),
        folder / "text_encoder.onnx",
        ["input_ids", "attention_mask"],
        ["token_states", "pooled"],
        {
            "input_ids": {0: "batch", 1: "tokens"},
            "attention_mask": {0: "batch", 1: "tokens"},
            "token_states": {0: "batch", 1: "tokens"},
            "pooled": {0: "batch"},
        },
    )
    log("[3/5] fusion -> fusion.onnx")
    export_fusion(model.fusion, folder / "fusion.onnx")


def _export_decoder(
    folder: Path, model: NpcModel, precision: str, block_size: int, log: Callable[[str], None]
) -> DecoderDims:
    """decoder.onnx built op by op from the weights (onnx_decoder.py), quantised, and the prefill graph beside it
    for int8 and int4; returns the decoder's dimensions."""
    lm = model.decoder.lm
    dims = dims_from_config(lm.config, MAX_POSITIONS)
    state = {k: v.detach().float().numpy() for k, v in lm.state_dict().items()}
    graph = build_decoder(state, dims)
    del state
    if precision != "fp32":
        log("      prefill graph -> decoder_prefill.onnx (7-bit weights, int8 activations per position)")
        save_decoder(quantize_prefill(graph), folder / PREFILL_FILE)
        graph = quantize_decoder(graph, bits=8 if precision == "int8" else 4, block_size=block_size)
    save_decoder(graph, folder / "decoder.onnx")
    return dims


def _write_embeddings_and_tokenizers(folder: Path, model: NpcModel, precision: str) -> np.ndarray:
    """embeddings.npy (fp16 unless fp32) and the two tokenizers; returns the embedding table written."""
    table = model.embedding_table.astype(np.float32 if precision == "fp32" else np.float16)
    np.save(folder / "embeddings.npy", table)
    shutil.copyfile(model.decoder.source.folder / "tokenizer.json", folder / "tokenizer.json")
    shutil.copyfile(local_path(TEXT_ENCODER).parent / "tokenizer.json", folder / "text_tokenizer.json")
    return table


def _producer() -> dict[str, str]:
    return {
        "npc_sdk": __version__,
        "torch": torch.__version__.split("+")[0],
        "transformers": transformers.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def _sources(model: NpcModel) -> list[dict]:
    """The weight packages exported from (a custom decoder first, by its file and fingerprint)."""
    source = model.decoder.source
    packages = (DECODER, TEXT_ENCODER, IMAGE_ENCODER) if source.is_default else (TEXT_ENCODER, IMAGE_ENCODER)
    sources = [
        {"package": p.package, "version": p.version, "file": f.member, "sha256": f.sha256}
        for p in packages
        for f in p.files[:1]
    ]
    if not source.is_default:
        sources.insert(0, {"decoder": source.given, "sha256": source.sha256})
    return sources


def _fusion_section(model: NpcModel) -> FusionSection:
    info = model.fusion_info
    return FusionSection(
        source=info.source,
        trained=info.trained,
        sha256=sha256_file(Path(info.source)) if info.trained else None,
        decoder_lora=info.decoder_lora,
        decoder_sha256=model.decoder.source.sha256,
        decoder_lora_sha256=sha256_file(Path(info.decoder_lora)) if info.decoder_lora else None,
        config=model.fusion.cfg.to_dict(),
        # the grounding head's vocabulary: words that name each tag, calibrated threshold
        tags=tuple(TagEntry(t.name, tuple(t.words), t.kind, round(t.threshold, 6)) for t in model.tags),
    )


def _decoder_section(model: NpcModel, dims: DecoderDims) -> DecoderSection:
    source = model.decoder.source
    return DecoderSection.from_json(
        {
            **dims.to_dict(),
            "eos_token_id": model.decoder.eos_id,
            "chat_format": model.decoder.chat_format.to_dict(),
            "source": {
                "name": source.name,
                "given": source.given,  # the GGUF file or folder exported from; "" for the embedded default
                "sha256": source.sha256,
                "family": dims.family,
                "parameters": int(sum(p.numel() for p in model.decoder.lm.parameters())),
            },
        }
    )


def _preprocessing() -> dict:
    return {
        "image": "letterbox",  # scaled to fit, centred on grey PAD_VALUE; nothing cropped
        "image_width": IMAGE_WIDTH,
        "image_height": IMAGE_HEIGHT,
        "image_grid": list(GRID),
        "pad_value": PAD_VALUE,
        "pixel_mean": PIXEL_MEAN,
        "pixel_std": PIXEL_STD,
        "text_max_tokens": TEXT_MAX_TOKENS,
        "role_max_tokens": ROLE_MAX_TOKENS,
    }


def _encoder_components(fcfg: FusionConfig, dims: DecoderDims) -> dict:
    """The manifest's image_encoder, text_encoder and fusion entries: file, inputs and outputs with shapes."""
    v_i = ["batch", fcfg.image_cells, fcfg.image_dim]
    v_mid = ["batch", 4 * fcfg.image_cells, fcfg.mid_dim]
    return {
        "image_encoder": {
            "filename": "image_encoder.onnx",
            "inputs": {"pixels": ["batch", 3, IMAGE_HEIGHT, IMAGE_WIDTH]},
            "outputs": {"v_I": v_i, "v_mid": v_mid},
        },
        "text_encoder": {
            "filename": "text_encoder.onnx",
            "inputs": {"input_ids": ["batch", "tokens"], "attention_mask": ["batch", "tokens"]},
            "outputs": {
                "token_states": ["batch", "tokens", fcfg.text_dim],
                "pooled": ["batch", fcfg.text_dim],
            },
        },
        "fusion": {
            "filename": "fusion.onnx",
            "inputs": {
                "v_I": v_i,
                "v_mid": v_mid,
                "has_image": ["batch"],
                "v_T": ["batch", "tokens", fcfg.text_dim],
                "text_mask": ["batch", "tokens"],
                "v_R": ["batch", fcfg.text_dim],
            },
            "outputs": {
                "prefix": ["batch", fcfg.prefix_positions, dims.hidden],
                "tag_probs": ["batch", len(fcfg.tag_words)],
            },
        },
    }


def _decoder_components(dims: DecoderDims, precision: str, block_size: int) -> dict:
    """The manifest's decoder entry (I/O names in the onnxruntime-genai shape) and, for int8 and int4, the prefill
    graph's."""
    past, present = io_names(dims.layers)
    kv = ["batch", dims.kv_heads, "max_len", dims.head_dim]
    out = {
        "decoder": {
            "filename": "decoder.onnx",
            "inputs": {
                "inputs_embeds": ["batch", "seq", dims.hidden],
                "attention_mask": ["batch", "total"],
                "position_ids": ["batch", "seq"],
                **{n: kv for n in past},
            },
            "outputs": {"logits": ["batch", dims.vocab], **{n: kv for n in present}},
            "past_key_names": "past_key_values.%d.key",
            "past_value_names": "past_key_values.%d.value",
            "present_key_names": "present.%d.key",
            "present_value_names": "present.%d.value",
            "kv_shared_buffer": True,
        }
    }
    if precision != "fp32":
        out["decoder"]["quantization"] = (
            f"{8 if precision == 'int8' else 4}-bit weights, symmetric, blocks of {block_size}"
        )
        out["decoder"]["block_size"] = block_size
        out["decoder_prefill"] = {
            "filename": PREFILL_FILE,
            "same_io_as": "decoder",
            "used_for": "calls of more than one new position (a turn's prefill); decode steps use decoder",
            "quantization": "weights at 7 bits per output column; int8 activations per position",
        }
    return out
