"""Training data, training and evaluation: `data scenes|dialogue`, `train`, `eval` (the torch side)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._common import default_data_dir, ensure_model, torch_side


def _personas(args: argparse.Namespace):
    dialogue = torch_side("npc_export.data.dialogue_data")
    return dialogue.training_personas(Path(args.personas)) if args.personas else dialogue.training_personas()


def cmd_data(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else default_data_dir()
    if args.what == "scenes":
        scenes = torch_side("npc_export.data.splits")
        sizes = (
            ("train", args.n),
            ("val", args.val),
            ("heldout_family", args.heldout),
            ("heldout_pairs", args.heldout),
        )
        for split, n in sizes:
            if n:
                path = scenes.write_split(out, n, split, args.seed, log=print)
                print(f"wrote {n} {split} scenes: {path} (pictures in {out / 'images'})")
        torch_side("npc_export.data.datasets").write_builtin_meta(out)
        return 0
    data = torch_side("npc_export.data.dialogue_data")
    dataset = torch_side("npc_export.data.datasets").Dataset.open(out)
    from ..runtime.onnx_model import OnnxNpcModel

    runtime = OnnxNpcModel.load(ensure_model(args.model), slots=args.items_at_once * args.candidates)
    pictures = dataset.split("train")[: args.scenes]
    personas = _personas(args)
    print(
        f"teacher: {len(pictures)} pictures x {args.per_scene} personas, {args.candidates} candidates each "
        f"({args.items_at_once * args.candidates} decoded together)"
    )
    stats = data.generate_dialogue(
        runtime,
        {p.image.name: p.tags for p in pictures},
        personas,
        out,
        per_scene=args.per_scene,
        candidates=args.candidates,
        seed=args.seed,
        items_at_once=args.items_at_once,
        log=print,
    )
    print(json.dumps(stats, indent=2))
    return 0


def _train_config(args: argparse.Namespace):
    return torch_side("npc_export.train.train").TrainConfig(
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        lora_rank=args.lora_rank,
        lora_lr=args.lora_lr,
        lora_mlp=not args.no_lora_mlp,
        grounding_weight=args.grounding_weight,
        unlikelihood_weight=args.unlikelihood_weight,
        head=torch_side("npc_export.train.grounding").HeadConfig(steps=args.head_steps, seed=args.seed),
    )


def cmd_train_preference(args: argparse.Namespace) -> int:
    """DPO of the shipped decoder on reply pairs of the corpus's training personas: (written, own) from eval
    records, (acceptable, not) from labelled ones."""
    corpus = torch_side("npc_export.data.corpus")
    preference = torch_side("npc_export.train.preference")
    root = Path(args.corpus)
    items = corpus.read_corpus(root)
    try:
        preferences = preference.read_preferences([Path(r) for r in args.preference], items)
    except ValueError as err:
        raise SystemExit(f"--preference: {err}") from err
    if not preferences:
        raise SystemExit(
            f"{', '.join(args.preference)}: no pairs: no replies of training items that differ from the written ones, "
            "and no item with both an acceptable and an unacceptable labelled reply"
        )
    out = Path(args.out) if args.out else default_data_dir().parent.parent / "training" / "preference-run"
    lora = torch_side("npc_export.model.reference").DEFAULT_DECODER_LORA  # what NpcModel.load merges
    model = torch_side("npc_export").NpcModel.load(log=lambda msg: print(f"[setup] {msg}"))
    cfg = preference.PreferenceConfig(
        steps=args.steps, pairs=max(1, args.batch // 2), lr=args.lora_lr, beta=args.beta, seed=args.seed
    )
    summary = preference.train_preference(
        model, items, corpus.personas_of(root), preferences, lora, out, cfg, log=print
    )
    print(f"preference steps {summary['steps_done']}/{cfg.steps} in {summary['seconds']:.0f} s; log in {out}")
    print(
        f"make it the default: cp {out / 'decoder_lora.safetensors'} export/weights/decoder_lora.safetensors"
    )
    return 0 if summary["finished"] else 130


def cmd_train_corpus(args: argparse.Namespace) -> int:
    """Fusion + LoRA on the authored corpus, from the base decoder and the committed grounding head."""
    corpus = torch_side("npc_export.data.corpus")
    root = Path(args.corpus)
    items = corpus.read_corpus(root)
    if args.limit:
        items = items[: args.limit]
    out = Path(args.out) if args.out else default_data_dir().parent.parent / "training" / "corpus-run"
    model = torch_side("npc_export").NpcModel.load(
        committed_lora=False, log=lambda msg: print(f"[setup] {msg}")
    )
    summary = torch_side("npc_export.train.corpus_train").train_corpus(
        model, items, corpus.personas_of(root), out, _train_config(args), resume=args.resume, log=print
    )
    print(
        f"corpus steps {summary['steps_done']}/{args.steps} in {summary['seconds']:.0f} s; reply loss "
        f"{summary['reply_loss_first20']} (first 20 steps) -> {summary['reply_loss_last20']} (last 20)"
    )
    (out / "train_log.json").write_text(json.dumps({"corpus": summary}, indent=2) + "\n")
    if not summary["finished"]:
        print(f"interrupted: `npc-sdk train --corpus --resume --out {out}` goes on from the checkpoint")
        return 130
    torch_side("npc_export.model.reference").save_fusion(
        model.fusion, model.vocabulary, out / "fusion.safetensors", model.decoder.source.sha256
    )
    made = [f for f in ("fusion.safetensors", "decoder_lora.safetensors") if (out / f).is_file()]
    print("make them the default: " + "; ".join(f"cp {out / f} export/weights/{f}" for f in made))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    if args.preference and not args.corpus:
        raise SystemExit("--preference trains on the corpus: give --corpus too")
    if args.preference:
        return cmd_train_preference(args)
    if args.corpus:
        return cmd_train_corpus(args)
    train = torch_side("npc_export.train.train")
    datasets = torch_side("npc_export.data.datasets")
    data = Path(args.data) if args.data else default_data_dir()
    dataset = datasets.Dataset.open(data)
    stages = ("head", "dialogue") if args.stage == "all" else (args.stage,)
    items = torch_side("npc_export.data.dialogue_data").read_dialogue(data) if "dialogue" in stages else []
    if args.limit:
        items = items[: args.limit]
    out = Path(args.out) if args.out else data.parent.parent / "training" / f"{data.name}-run"
    cfg = _train_config(args)
    # "dialogue" alone goes on from the head this run folder trained; "head"/"all" start from the base models
    head_file = out / "head.safetensors"
    weights = head_file if stages == ("dialogue",) and head_file.is_file() else None
    # Another decoder's dialogue stage may start from the committed grounding head (it reads only the picture):
    # load_fusion lends a foreign decoder the head alone, never the projector trained for SmolLM2.
    lend_head = bool(args.decoder) and stages == ("dialogue",) and weights is None
    model = torch_side("npc_export").NpcModel.load(
        committed_weights=lend_head,
        fusion_weights=weights,
        vocabulary=dataset.vocabulary,
        decoder=args.decoder,
        log=lambda msg: print(f"[setup] {msg}"),
    )
    if lend_head and not model.decoder.source.is_default:
        print("[setup] dialogue stage for this decoder starts from the committed grounding head")
    summary = train.train(
        model, dataset, items, _personas(args), out, cfg, stages=stages, resume=args.resume, log=print
    )
    if "dialogue" in summary:
        d = summary["dialogue"]
        print(
            f"dialogue steps {d['steps_done']}/{cfg.steps} in {d['seconds']:.0f} s; reply loss "
            f"{d['reply_loss_first20']} (first 20 steps) -> {d['reply_loss_last20']} (last 20)"
        )
    if not summary["finished"]:
        print(f"interrupted: `npc-sdk train --resume --out {out}` goes on from the checkpoint")
        return 130
    made = [f for f in ("fusion.safetensors", "decoder_lora.safetensors") if (out / f).is_file()]
    print(
        f"wrote {', '.join(str(out / f) for f in made)}, {out / 'head_report.md'}, {out / 'train_log.json'}"
    )
    if model.decoder.source.is_default:
        print("make them the default: " + "; ".join(f"cp {out / f} export/weights/{f}" for f in made))
    else:
        lora = f" --lora {out / 'decoder_lora.safetensors'}" if "decoder_lora.safetensors" in made else ""
        print(
            f"export with them: npc-sdk export --decoder {args.decoder} --fusion {out / 'fusion.safetensors'}{lora}"
        )
    return 0


def cmd_behaviour(args: argparse.Namespace) -> int:
    from .. import behaviour_eval as be
    from ..personas.files import load_persona
    from ..runtime.onnx_model import OnnxNpcModel

    model = OnnxNpcModel.load(ensure_model(args.model), slots=1)
    persona_dir = (
        Path(args.personas) if args.personas else Path(__file__).resolve().parents[2] / "samples" / "personas"
    )
    figures: dict = {}
    if args.calibrate:
        rows = be._rows("actions.jsonl")
        figures["calibration"] = be.calibrate(model, be._personas(persona_dir, rows), rows)
        print(f"[actions] calibrated on tune: {figures['calibration']}")
    figures["actions"] = be.evaluate_actions(model, persona_dir, replies=not args.no_replies)
    figures["emotions"] = be.evaluate_emotions(model)
    cards = [persona_dir / f"{p}.toml" for p in ("brakka", "old_tom", "mirela", "ysolde", "captain_hale")]
    figures["cross_turn_repetition"] = be.cross_turn_repetition(model, [load_persona(p) for p in cards])
    rates = {k: v["repeating_a_recent_4gram"] for k, v in figures["cross_turn_repetition"].items()}
    print(f"[dialogue] cross-turn repetition: {rates}")
    out = Path(args.json)
    out.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md = out.with_suffix(".md")
    a, e = figures["actions"], figures["emotions"]
    lines = [
        "# Actions and emotions (npc-sdk eval --behaviour)\n",
        f"Actions, test split: {a['lines']} lines ({a['positive_lines']} asking for an action): precision "
        f"**{a['precision']}**, recall **{a['recall']}**, arguments correct {a['arguments_correct']}"
        + (
            f", replies without a refusal word {a['replies_without_refusal']}"
            if "replies_without_refusal" in a
            else ""
        )
        + f" (threshold {a['threshold']}, request {a['request']}).\n",
        "| action | lines | precision | recall | arguments |\n|---|---|---|---|---|",
        *(
            f"| {k} | {v['lines']} | {v['precision']} | {v['recall']} | {v['arguments_correct']} |"
            for k, v in a["per_action"].items()
        ),
        "\nErrors:\n",
        *(f'- {x["persona"]}: "{x["line"]}" expected {x["expected"]}, got {x["got"]}' for x in a["errors"]),
        f"\nEmotions: {e['replies']} replies, accuracy **{e['accuracy']}**, {e['ms_per_reply_median']} ms per reply.\n",
        be.confusion_markdown(e["confusion"]),
    ]
    ct = figures["cross_turn_repetition"]
    lines += [
        "\nCross-turn repetition (a reply repeating a word 4-gram of one of the two before it, five-line dialogues, "
        f"5 personas x 2 seeds): with no_repeat_history {ct['with_history_blocking']['repeating_a_recent_4gram']}, "
        f"without {ct['without']['repeating_a_recent_4gram']} ({ct['without']['replies']} replies each).\n",
    ]
    for key in ("without", "with_history_blocking"):
        t = ct[key]["transcripts"][0]
        lines += [
            f"{key} ({t['persona']}):\n",
            *(f"- {line} -> {r}" for line, r in zip(be.DIALOGUE, t["replies"], strict=False)),
        ]
    if a.get("reply_transcripts"):
        lines += ["\nReplies when an action fired (greedy):\n"]
        lines += [
            f'- {t["persona"]} [{t["action"]}] "{t["line"]}" -> "{t["reply"]}"'
            for t in a["reply_transcripts"]
        ]
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out} and {md}")
    return 0


def cmd_eval_corpus(args: argparse.Namespace) -> int:
    """Replies to the held-out personas' written lines, judged by the critic, per variant."""
    from ..runtime.onnx_model import OnnxNpcModel

    corpus = torch_side("npc_export.data.corpus")
    ev = torch_side("npc_export.eval.corpus_eval")
    root = Path(args.corpus)
    folder = ensure_model(args.model)
    runtime = OnnxNpcModel.load(folder, slots=8)
    variants = args.variants.split(",") if args.variants else ev.VARIANTS
    print(f"[model] {folder}; variants {', '.join(variants)}")
    results, records = ev.evaluate_corpus(
        runtime,
        corpus.read_corpus(root),
        corpus.personas_of(root),
        variants=variants,
        per_persona=args.per_persona,
        seed=args.seed or 1,
        split=args.corpus_split,
        log=print,
    )
    results["meta"]["model"] = str(folder)
    out = Path(args.json)
    ev.write(results, records, out, f"Held-out personas: {folder.name}")
    print(json.dumps({k: v for k, v in results.items() if k not in ("meta", "goals")}, indent=2))
    print(f"wrote {out}, {out.with_suffix('.md')} and {out.with_suffix('.jsonl')}")
    return 0


def cmd_fit_critic(args: argparse.Namespace) -> int:
    """Fit the reply critic to the labelled replies; report its agreement on the held-out quarter."""
    from ..runtime.onnx_model import OnnxNpcModel

    labels = torch_side("npc_export.eval.critic_labels")
    corpus = torch_side("npc_export.data.corpus")
    rows = labels.read_labels(Path(args.fit_critic))
    runtime = OnnxNpcModel.load(ensure_model(args.model), slots=1)
    weights, report = labels.fit(runtime.sentence_vectors, rows, corpus.personas_of())
    assets = Path(__file__).resolve().parents[1] / "assets" / "critic.json"
    assets.write_text(weights.to_json() + "\n")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {assets} and {out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    if args.behaviour:
        return cmd_behaviour(args)
    if args.fit_critic:
        return cmd_fit_critic(args)
    if args.corpus:
        return cmd_eval_corpus(args)
    evaluate = torch_side("npc_export.eval.evaluate")
    data = Path(args.data) if args.data else default_data_dir()
    dataset = torch_side("npc_export.data.datasets").Dataset.open(data)
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
        torch_side("npc_export.build.onnx_export").export_model(folder, "int4", model=model, log=print)
        del model
    else:
        folder = ensure_model(None)
    from ..runtime.onnx_model import OnnxNpcModel

    runtime = OnnxNpcModel.load(folder, slots=1)
    fusion = json.loads((folder / "manifest.json").read_text())["fusion"]
    print(f"[model] {folder}: fusion {fusion['source']}, decoder LoRA {fusion.get('decoder_lora') or 'none'}")
    head_splits = [s for s in args.head_splits.split(",") if s and dataset.has(s)]
    head = evaluate.evaluate_head(runtime, {s: dataset.split(s) for s in head_splits}, log=print)
    results, records = {}, []
    if args.scenes:
        pictures = dataset.split(args.split)[: args.scenes]
        variants = args.variants.split(",") if args.variants else evaluate.VARIANTS
        weights = {
            k: v
            for k, v in (
                ("scene_word_weight", args.scene_word_weight),
                ("absent_word_weight", args.absent_word_weight),
            )
            if v is not None
        }
        results, records = evaluate.evaluate(
            runtime, pictures, _personas(args), seed=args.seed, variants=variants, weights=weights, log=print
        )
        results["meta"]["model"] = {"folder": str(folder), **{k: v for k, v in fusion.items() if k != "tags"}}
        results["meta"]["split"] = args.split
    md, transcript = evaluate.write_report(results, records, Path(args.json), head=head)
    print(md.read_text())
    print(f"wrote {args.json}, {md}, {transcript} and the replies beside them")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data", help="make training data: scenes (pictures + labels) or dialogue (teacher replies)"
    )
    p.add_argument("what", choices=["scenes", "dialogue"])
    p.add_argument("--out", help="dataset folder (default: the cache's datasets/scenes-v2)")
    p.add_argument("--n", type=int, default=16000, help="scenes: training pictures to render")
    p.add_argument(
        "--val", type=int, default=1500, help="scenes: validation pictures (threshold calibration)"
    )
    p.add_argument("--heldout", type=int, default=400, help="scenes: pictures of each held-out split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="dialogue: teacher model folder (default: the cached int4 export)")
    p.add_argument("--personas", help="dialogue: persona folder (default: samples/personas)")
    p.add_argument("--scenes", type=int, default=2600, help="dialogue: training pictures talked about")
    p.add_argument("--per-scene", type=int, default=2, help="dialogue: personas that talk about each picture")
    p.add_argument(
        "--candidates", type=int, default=3, help="dialogue: teacher samples per item (best one kept)"
    )
    p.add_argument(
        "--items-at-once", type=int, default=4, help="dialogue: items decoded together in one batch"
    )
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("train", help="train the grounding head, then the fusion and decoder LoRA on dialogue")
    p.add_argument(
        "--data", help="dataset folder (default: the cache's datasets/scenes-v2; docs/training.md)"
    )
    p.add_argument("--out", help="run folder: checkpoint, weights, reports (default: the cache's training/)")
    p.add_argument("--stage", choices=("all", "head", "dialogue"), default="all")
    p.add_argument(
        "--corpus",
        nargs="?",
        const=str(Path(__file__).resolve().parents[2] / "corpus"),
        help="train the fusion and a fresh decoder LoRA on the authored dialogue corpus (default: corpus/; "
        "docs/training.md) instead of teacher dialogue; the grounding head stays the committed one",
    )
    p.add_argument(
        "--decoder",
        help="train the fusion for this GGUF file or Hugging Face folder instead of the embedded SmolLM2 "
        "(docs/models.md); the weights record its sha256",
    )
    p.add_argument(
        "--preference",
        metavar="RECORDS",
        action="append",
        help="with --corpus: preference training (DPO) of the shipped decoder on reply pairs of training "
        "personas. RECORDS is a .jsonl, or a folder of them: rows labelled by reading (`acceptable`, as in "
        "corpus/labels/training_personas/) pair an acceptable reply against one that is not; rows of `npc-sdk "
        "eval --corpus --corpus-split train` pair the written reply against the model's own (docs/training.md); "
        "give it again to read several (rounds of reading); "
        "--steps, --lora-lr and --batch (pairs) apply",
    )
    p.add_argument("--beta", type=float, default=0.1, help="with --preference: DPO temperature")
    p.add_argument("--personas", help="persona folder (default: samples/personas)")
    p.add_argument("--head-steps", type=int, default=2000, help="grounding head optimiser steps")
    p.add_argument("--steps", type=int, default=900, help="dialogue optimiser steps")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="use only the first N dialogue examples")
    p.add_argument("--resume", action="store_true", help="go on from the run folder's checkpoint")
    p.add_argument(
        "--lora-rank", type=int, default=8, help="LoRA adapters on the decoder (0: the decoder stays)"
    )
    p.add_argument("--lora-lr", type=float, default=3e-4, help="learning rate of the LoRA adapters")
    p.add_argument("--no-lora-mlp", action="store_true", help="adapters on attention only, not the MLP")
    p.add_argument(
        "--grounding-weight", type=float, default=1.0, help="loss weight of tokens naming a category"
    )
    p.add_argument(
        "--unlikelihood-weight", type=float, default=0.5, help="weight of not naming absent things"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="head precision/recall, and reply metrics with ablations and transcripts")
    p.add_argument("--split", default="heldout_family", help="pictures the replies are about")
    p.add_argument(
        "--corpus",
        nargs="?",
        const=str(Path(__file__).resolve().parents[2] / "corpus"),
        help="replies to the held-out personas of the authored corpus (default: corpus/), judged by the reply "
        "critic, per variant (--variants default,single,no_bias,no_prefix)",
    )
    p.add_argument(
        "--per-persona", type=int, default=20, help="with --corpus: items of each held-out persona"
    )
    p.add_argument(
        "--fit-critic",
        nargs="?",
        const=str(Path(__file__).resolve().parents[2] / "corpus" / "labels"),
        help="fit the reply critic to labelled replies (default: corpus/labels/), write it into the package "
        "assets and its held-out agreement to --json",
    )
    p.add_argument(
        "--corpus-split", default="heldout", choices=("heldout", "train"), help="with --corpus: whose lines"
    )
    p.add_argument(
        "--head-splits",
        default="heldout_family,heldout_pairs,val,test",
        help="splits the head is measured on",
    )
    p.add_argument(
        "--json", required=True, help="write the figures here (Markdown table and transcripts beside it)"
    )
    p.add_argument("--data", help="dataset folder (default: the cache's datasets/scenes-v2)")
    p.add_argument("--weights", help="fusion weights to evaluate (default: the committed ones)")
    p.add_argument("--lora", help="decoder LoRA adapters to evaluate with them (default: the committed ones)")
    p.add_argument("--model", help="evaluate this model folder as it is (default: the cached int4 export)")
    p.add_argument("--personas", help="persona folder (default: samples/personas)")
    p.add_argument("--scenes", type=int, default=80, help="pictures the replies are about (0: the head only)")
    p.add_argument(
        "--variants", help="comma-separated subset of trained,no_image,shuffled_image,engine_facts"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scene-word-weight", type=float, help="override GenerationConfig.scene_word_weight")
    p.add_argument("--absent-word-weight", type=float, help="override GenerationConfig.absent_word_weight")
    p.add_argument(
        "--behaviour",
        action="store_true",
        help="instead: action precision/recall and emotion accuracy on the labelled sets (runtime only)",
    )
    p.add_argument("--calibrate", action="store_true", help="with --behaviour: recalibrate on the tune split")
    p.add_argument("--no-replies", action="store_true", help="with --behaviour: skip generating replies")
    p.set_defaults(func=cmd_eval)
