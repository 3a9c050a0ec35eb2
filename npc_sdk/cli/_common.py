"""Helpers every command group shares: the torch side on demand, figures out, the default model folder."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any


def torch_side(module: str = "npc_export") -> Any:
    """Import a module of the torch side on demand, with a message that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SystemExit(
            f"this command needs the torch side ({exc.name} is missing). Install it with:\n"
            "  pip install torch==2.13.0 && pip install -e '.[export]'"
        ) from exc


def report(figures: dict[str, Any], json_path: str | None, hide: tuple[str, ...] = ()) -> None:
    """Print figures one per line (all but `hide`) and write them all to `json_path` when given."""
    for key, value in figures.items():
        if key not in hide:
            print(f"{key:34s} {value}")
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {json_path}")


def default_model_dir(precision: str) -> Path:
    from ..cache import cache_dir

    return cache_dir() / "models" / f"npc-default-{precision}"


def _stale_export(manifest: Path) -> str:
    """Why the cached default export is out of date: an older folder format, no prefill graph, or other weights
    than the torch side commits ("" when it is current)."""
    import importlib.util

    from ..runtime.manifest import QUANTIZATION_RECIPE
    from ..runtime.model_folder import FORMAT_VERSION

    if not manifest.is_file():
        return ""
    data = json.loads(manifest.read_text())
    if data.get("format_version") != FORMAT_VERSION:
        return (
            f"[setup] {manifest.parent} was exported by an older npc-sdk (format {data.get('format_version')}, "
            f"this one reads {FORMAT_VERSION}); exporting again"
        )
    if data.get("precision") != "fp32" and "decoder_prefill" not in data.get("model", {}):
        return (
            f"[setup] {manifest.parent} has no prefill graph (decoder_prefill.onnx: first tokens ~2x sooner); "
            "exporting again"
        )
    recipe = data.get("quantization_recipe", 1)
    if data.get("precision") != "fp32" and recipe != QUANTIZATION_RECIPE:
        return (
            f"[setup] {manifest.parent} was built by an older recipe ({recipe}; this npc-sdk's {QUANTIZATION_RECIPE} "
            "makes graphs nearer the float model and faster); exporting again"
        )
    spec = importlib.util.find_spec("npc_export")  # locates the package without importing torch
    if spec is None or not spec.submodule_search_locations:
        return ""
    from ..weights import sha256_file

    folder = Path(list(spec.submodule_search_locations)[0]) / "weights"
    recorded = data.get("fusion", {})
    for filename, key in (
        ("fusion.safetensors", "sha256"),
        ("decoder_lora.safetensors", "decoder_lora_sha256"),
    ):
        weights = folder / filename
        committed = sha256_file(weights) if weights.is_file() else None
        if committed != recorded.get(key):
            return f"[setup] {manifest.parent} was not exported with {weights}; exporting again"
    return ""


def ensure_model(path: str | None, precision: str = "int4") -> Path:
    """The model folder to run: `path`, or the default one in the cache (exported on first use)."""
    if path:
        return Path(path)
    folder = default_model_dir(precision)
    stale = _stale_export(folder / "manifest.json")
    if stale or not (folder / "manifest.json").is_file():
        print(
            stale
            or f"[setup] no exported model yet; exporting the default {precision} model to {folder} (once)"
        )
        model = torch_side("npc_export").NpcModel.load(log=lambda msg: print(f"[setup] {msg}"))
        torch_side("npc_export.build.onnx_export").export_model(folder, precision, model=model, log=print)
    return folder


def default_data_dir() -> Path:
    from ..cache import cache_dir

    return cache_dir() / "datasets" / "scenes-v2"
