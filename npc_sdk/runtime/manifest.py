"""manifest.json of a model folder, typed: `export/build/onnx_export.py` writes a `Manifest`, the runtime reads one.

One schema for both sides, so a key the export renames cannot silently go missing at load time: `Manifest.from_json`
names the field that is missing or of the wrong type (`manifest.json: decoder.kv_heads: missing`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import InvalidInputError, ModelFolderError

FORMAT = "npc-sdk-model"
FORMAT_VERSION = (
    2  # 2: letterboxed 448x256 encoder with v_mid, fusion with tag probabilities, tags in the manifest
)
PRECISIONS = ("fp32", "int8", "int4")
# How this npc-sdk's export builds and quantises int8 and int4 folders (export/build/quantize.py, onnx_decoder.py).
# 1: prefill weights at 8 bits; 2: at 7 bits, so that AVX2's integer GEMM cannot saturate (next-token KL to fp32
# 0.28 -> 0.10 on such a CPU); 3: attention takes the packed QKV and applies the rotary embedding itself (same
# logits, decode steps ~3% faster). A folder records the recipe it was made with; the cached default export is
# redone when it is older.
QUANTIZATION_RECIPE = 3
# Weights per scale in an int4/int8 decoder.onnx (MatMulNBits takes a power of two from 16); `npc-sdk export
# --block-size` picks one, the manifest's decoder entry records it.
DECODER_BLOCK_SIZE = 32
DECODER_BLOCK_SIZES = (16, 32, 64, 128, 256)


def check_block_size(block_size: int, precision: str) -> None:
    """Refuse a block size MatMulNBits cannot take, and any other than the default for fp32, which has no blocks
    (the export and the CLI both ask, the CLI before it loads a model)."""
    if block_size not in DECODER_BLOCK_SIZES:
        sizes = ", ".join(map(str, DECODER_BLOCK_SIZES))
        raise InvalidInputError("block_size", f"must be one of {sizes}, got {block_size!r}")
    if precision == "fp32" and block_size != DECODER_BLOCK_SIZE:
        raise InvalidInputError(
            "block_size", f"{block_size}: an fp32 export has no weight blocks; use it with int4 or int8"
        )


class _Reader:
    """Typed access to one section of the JSON, with errors that name `where.key`."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ModelFolderError(f"{where}: not an object")
        self.data, self.where = data, where

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise ModelFolderError(f"{self.where}.{key}: missing")
            return default
        value = self.data[key]
        # bool is an int in Python: a count written as true is as wrong as one written as "3"
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            raise ModelFolderError(f"{self.where}.{key}: {type(value).__name__}, expected {_names(kind)}")
        return value

    def section(self, key: str) -> _Reader:
        return _Reader(self.get(key, dict), f"{self.where}.{key}")


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _names(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kind))


@dataclass(frozen=True)
class TagEntry:
    """One word the grounding head predicts, the words that name it and its calibrated threshold."""

    name: str
    words: tuple[str, ...]
    kind: str
    threshold: float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "words": list(self.words), "kind": self.kind, "threshold": self.threshold}

    @classmethod
    def from_json(cls, data: Any, where: str) -> TagEntry:
        r = _Reader(data, where)
        return cls(
            r.get("name", str),
            tuple(r.get("words", list)),
            r.get("kind", str, "thing"),
            float(r.get("threshold", (int, float))),
        )


@dataclass(frozen=True)
class FusionSection:
    """Where the fusion weights came from, their shape (`config`, FusionConfig's fields) and the head's tags."""

    config: dict[str, Any]
    trained: bool
    tags: tuple[TagEntry, ...]
    source: str = ""
    sha256: str | None = None
    decoder_lora: str | None = None
    decoder_sha256: str = ""  # the decoder this fusion (and its LoRA) belongs to
    decoder_lora_sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "tags": [t.to_json() for t in self.tags]}

    @classmethod
    def from_json(cls, data: Any, where: str = "fusion") -> FusionSection:
        r = _Reader(data, where)
        optional = (str, type(None))
        return cls(
            config=r.get("config", dict),
            trained=r.get("trained", bool),
            tags=tuple(
                TagEntry.from_json(t, f"{where}.tags[{i}]") for i, t in enumerate(r.get("tags", list, []))
            ),
            source=r.get("source", str, ""),
            sha256=r.get("sha256", optional, None),
            decoder_lora=r.get("decoder_lora", optional, None),
            decoder_sha256=r.get("decoder_sha256", str, ""),
            decoder_lora_sha256=r.get("decoder_lora_sha256", optional, None),
        )


@dataclass(frozen=True)
class DecoderSource:
    name: str  # "smollm2-135m-instruct" for the embedded decoder
    given: str  # the GGUF file or folder exported from; "" for the embedded default
    sha256: str
    family: str
    parameters: int


@dataclass(frozen=True)
class DecoderSection:
    """The decoder's dimensions (what KV buffers are shaped by), its end token, chat format and source."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    max_positions: int
    rope_theta: float
    rms_eps: float
    eos_token_id: int
    source: DecoderSource
    chat_format: dict[str, str] = field(default_factory=dict)  # personas.chat_format.ChatFormat's fields
    family: str = "llama"
    qkv_bias: bool = False
    o_bias: bool = False
    rope_type: str = "default"
    rope_scaling: dict[str, float] = field(default_factory=dict)

    INTS = (
        "layers",
        "hidden",
        "heads",
        "kv_heads",
        "head_dim",
        "intermediate",
        "vocab",
        "max_positions",
        "eos_token_id",
    )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, where: str = "decoder") -> DecoderSection:
        r = _Reader(data, where)
        src = r.section("source")
        number = (int, float)
        return cls(
            **{k: r.get(k, int) for k in cls.INTS},
            rope_theta=float(r.get("rope_theta", number)),
            rms_eps=float(r.get("rms_eps", number)),
            source=DecoderSource(
                name=src.get("name", str, "smollm2-135m-instruct"),
                given=src.get("given", str, ""),
                sha256=src.get("sha256", str, ""),
                family=src.get("family", str, "llama"),
                parameters=src.get("parameters", int, 0),
            ),
            chat_format=r.get("chat_format", dict, {}),
            family=r.get("family", str, "llama"),
            qkv_bias=r.get("qkv_bias", bool, False),
            o_bias=r.get("o_bias", bool, False),
            rope_type=r.get("rope_type", str, "default"),
            rope_scaling={k: float(v) for k, v in r.get("rope_scaling", dict, {}).items()},
        )


@dataclass(frozen=True)
class Manifest:
    """Everything manifest.json records. `components` maps a graph or file role (decoder, fusion, tokenizer, ...)
    to its filename and I/O shapes; `files` maps every file to its sha256."""

    precision: str
    files: dict[str, str]
    components: dict[str, dict[str, Any]]
    decoder: DecoderSection
    fusion: FusionSection
    opset: dict[str, int] = field(default_factory=dict)
    producer: dict[str, Any] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(
        default_factory=dict
    )  # the GenerationConfig defaults of the exporting npc-sdk
    format_version: int = FORMAT_VERSION
    quantization_recipe: int = QUANTIZATION_RECIPE

    def filename(self, component: str) -> str:
        entry = self.components.get(component)
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
            raise ModelFolderError(f"manifest.json: model.{component}.filename: missing")
        return entry["filename"]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "precision": self.precision,
            "quantization_recipe": self.quantization_recipe,
            "opset": self.opset,
            "producer": self.producer,
            "sources": self.sources,
            "fusion": self.fusion.to_json(),
            "decoder": self.decoder.to_json(),
            "preprocessing": self.preprocessing,
            "model": self.components,
            "search": self.search,
            "files": self.files,
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "manifest.json") -> Manifest:
        r = _Reader(data, where)
        if data.get("format") != FORMAT:
            raise ModelFolderError(f"{where}: not an npc-sdk model manifest")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ModelFolderError(
                f"{where}: format_version {version!r}; this npc-sdk reads version {FORMAT_VERSION}"
            )
        precision = r.get("precision", str)
        if precision not in PRECISIONS:
            raise ModelFolderError(
                f"{where}.precision: {precision!r}, expected one of {', '.join(PRECISIONS)}"
            )
        files = r.get("files", dict)
        if not files:
            raise ModelFolderError(f"{where}: the manifest lists no files")
        return cls(
            precision=precision,
            files={str(k): str(v) for k, v in files.items()},
            components=r.get("model", dict),
            decoder=DecoderSection.from_json(data.get("decoder"), f"{where}: decoder"),
            fusion=FusionSection.from_json(data.get("fusion"), f"{where}: fusion"),
            opset=r.get("opset", dict, {}),
            producer=r.get("producer", dict, {}),
            sources=r.get("sources", list, []),
            preprocessing=r.get("preprocessing", dict, {}),
            search=r.get("search", dict, {}),
            quantization_recipe=r.get("quantization_recipe", int, 1),
        )
