"""Training data, training and evaluation: `data scenes|dialogue`, `train`, `eval` (the torch side)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._common import default_data_dir, ensure_model, torch_side


def cmd_data(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else default_data_dir()
    scenes = torch_side("npc_export.scenes")
    if args.what == "scenes":
        for split, n in (("train", args.n), ("heldout", args.heldout)):
            if n:
                path = scenes.write_split(out, n, split, args.seed, log=print)
                print(f"wrote {n} {split} scenes: {path} (pictures in {out / 'images'})")
        return 0
    data = torch_side("npc_export.dialogue_data")
    from ..runtime.onnx_model import OnnxNpcModel

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
    dialogue = torch_side("npc_export.dialogue_data")
    personas = (
        dialogue.training_personas(Path(args.personas)) if args.personas else dialogue.training_personas()
    )
    return data, dialogue, personas


def cmd_train(args: argparse.Namespace) -> int:
    train = torch_side("npc_export.train")
    data, dialogue, personas = _training_inputs(args)
    scenes = torch_side("npc_export.scenes").read_split(data, "train")
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
    model = torch_side("npc_export").NpcModel.load(
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
    evaluate = torch_side("npc_export.evaluate")
    data, _dialogue, personas = _training_inputs(args)
    scenes = torch_side("npc_export.scenes").read_split(data, args.split)[: args.scenes]
    if args.model:
        folder = Path(args.model)
    elif args.weights or args.lora:
        # the weights under test, exported exactly as they would ship
        folder = data.parent.parent / "training" / "eval-model-int4"
        model = torch_side("npc_export").NpcModel.load(
            fusion_weights=Path(args.weights) if args.weights else None,
            decoder_lora=Path(args.lora) if args.lora else None,
            log=lambda msg: print(f"[setup] {msg}"),
        )
        print(f"[setup] exporting the weights under test to {folder}")
        torch_side("npc_export.onnx_export").export_model(folder, "int4", model=model, log=print)
        del model
    else:
        folder = ensure_model(None)
    from ..runtime.onnx_model import OnnxNpcModel

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


def register(sub: argparse._SubParsersAction) -> None:
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
