"""`npc-sdk train`: teach the NPC to see (the grounding head) and to talk about what it sees (fusion + LoRA).

Two stages, one run folder, both resumable:

  head      the grounding head on every labelled picture of the dataset (grounding.py): frozen encoder
            features cached on disk, per-tag thresholds calibrated on the validation pictures;
  dialogue  the co-attention fusion (K prefix vectors) and optional LoRA adapters on the decoder, on teacher
            replies (dialogue_data.py). The grounding head is frozen here.

Dialogue step: the decoder runs only over
"{user_start} [prefix] (In view: ...) line {generation} reply {stop}" (the decoder's chat format) for a batch
of one persona's examples, with that persona's KV state in front (computed once, or live when LoRA trains).
The note lists the picture's true tags the way the runtime lists the head's: present or not, no counts.

Loss: next-token cross-entropy on the reply tokens (tokens that name a scene category weighted by
`grounding_weight`), plus `unlikelihood_weight` x -log(1 - p) of the tokens that start a word of a category
that is not in the picture (so the decoder learns not to name what is not there).

Checkpoints every `checkpoint_every` steps and on Ctrl-C (out/checkpoint.pt); `resume=True` continues from one.
Writes out/fusion.safetensors (fusion + head + thresholds + vocabulary), out/decoder_lora.safetensors,
out/train_log.json, out/head_report.md and out/loss_curve.png.
"""

from __future__ import annotations

import json
import math
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from transformers import DynamicCache

from npc_sdk.personas.persona import Persona
from npc_sdk.personas.prompt import persona_block, turn_context
from npc_sdk.runtime.scene import SceneEntity, merge

from ..data.datasets import Dataset, Picture
from ..data.dialogue_data import DialogueItem
from ..model.lora import MLP_TARGETS, TARGETS, add_lora, remove_lora, save_lora
from ..model.reference import NpcModel, save_fusion
from ..model.vocabulary import TagInfo
from .grounding import (
    FeatureCache,
    HeadConfig,
    calibrate,
    cell_targets,
    grid_from_trunk,
    head_markdown,
    head_metrics,
    head_probabilities,
    labels_matrix,
    train_head,
)


@dataclass
class TrainConfig:
    steps: int = 900  # dialogue optimiser steps
    batch: int = 8
    lr: float = 5e-4
    warmup: int = 30
    weight_decay: float = 0.01
    max_reply_tokens: int = 48
    checkpoint_every: int = 25
    seed: int = 0
    lora_rank: int = 8  # > 0: LoRA adapters on the decoder train too
    lora_alpha: float = 16.0
    lora_lr: float = 3e-4
    lora_mlp: bool = True  # adapters on the MLP projections as well as attention
    grounding_weight: float = 1.0  # loss weight of reply tokens that name a scene category
    unlikelihood_weight: float = 0.5  # weight of -log(1 - p(start of an absent category's word))
    head: HeadConfig = field(default_factory=HeadConfig)


@dataclass
class Example:
    persona_id: str
    scene: str
    line: str
    pre: list[int]  # "<|im_start|>user\n" (before the prefix)
    post: list[int]  # lore + scene note + line + end of turn + "<|im_start|>assistant\n"
    target: list[int]  # reply + <|im_end|>
    weights: list[float] = field(default_factory=list)  # per target token: grounding words count more
    absent: list[int] = field(default_factory=list)  # first tokens of words of categories not in the picture


def scene_entities(tags: Sequence[str]) -> list[SceneEntity]:
    """A picture's tags as the runtime would list them from the head: each once, no names, no counts."""
    return [SceneEntity(t) for t in tags]


def scene_note(model: NpcModel, tags: Sequence[str]) -> str:
    return merge(None, model.tags, scene_entities(tags)).note()


# ---- stage 1: the grounding head -------------------------------------------------------------------------------
def train_grounding(
    model: NpcModel,
    dataset: Dataset,
    out: Path,
    cfg: HeadConfig,
    *,
    log: Callable[[str], None] = print,
) -> dict:
    """Train the head on the dataset's train pictures, calibrate on val, report on every other split."""
    vocab = dataset.tag_names
    if tuple(model.fusion.cfg.tag_words) != vocab:
        raise ValueError("the model's vocabulary is not the dataset's: load it with the dataset's vocabulary")
    cache_dir = dataset.folder / "features"
    splits = ["train", "val"] + [s for s in ("test", "heldout_family", "heldout_pairs") if dataset.has(s)]
    pictures = {s: dataset.split(s) for s in splits}
    trunk = {
        s: FeatureCache(cache_dir, s).build(model.image_encoder, [p.image for p in pics], log=log)
        for s, pics in pictures.items()
    }
    labels = {s: labels_matrix([p.tags for p in pics], vocab) for s, pics in pictures.items()}
    cells = cell_targets(pictures["train"], vocab)
    started = time.perf_counter()
    losses = train_head(
        model.fusion, model.image_encoder, trunk["train"], labels["train"], cfg, cells=cells, log=log
    )
    seconds = time.perf_counter() - started
    probs = {s: head_probabilities(model.fusion, model.image_encoder, trunk[s]) for s in splits}
    thresholds = calibrate(probs["val"], labels["val"], cfg.target_precision)
    with torch.no_grad():
        model.fusion.tag_thresholds.copy_(torch.from_numpy(thresholds))
    report = {s: head_metrics(probs[s], labels[s], thresholds, vocab) for s in splits if s != "train"}
    md = "\n".join(head_markdown(f"{s} ({len(pictures[s])} pictures)", m) for s, m in report.items())
    out.mkdir(parents=True, exist_ok=True)
    (out / "head_report.md").write_text(md)
    for s, m in report.items():
        log(f"  head on {s}: macro precision {m['macro_precision']}, macro recall {m['macro_recall']}")
    return {"config": asdict(cfg), "seconds": round(seconds, 1), "loss": losses, "metrics": report}


# ---- stage 2: dialogue ---------------------------------------------------------------------------------------
class Features:
    """Frozen inputs computed once: v_I per scene, v_T per line, v_R per persona, KV state per persona prompt."""

    def __init__(
        self,
        model: NpcModel,
        pictures: dict[str, Picture],
        trunk: dict[str, tuple[np.ndarray, np.ndarray]],
        personas: Sequence[Persona],
        lines: Sequence[str],
        log: Callable[[str], None] = print,
    ) -> None:
        log(f"  image grids for {len(trunk)} scenes")
        with torch.inference_mode():
            self.v_I: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
            for f, (mid, top) in trunk.items():
                v_I, v_mid = grid_from_trunk(model.image_encoder, top[None], mid[None])
                self.v_I[f] = (v_I[0].clone(), v_mid[0].clone())
            self.v_T = {line: tuple(t.clone() for t in model.encode_text(line)) for line in set(lines)}
            self.v_R = {p.id: model.encode_role(p).clone() for p in personas}
        self.pictures = pictures
        log(f"  KV state of {len(personas)} persona prompts")
        self.persona_kv: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        fmt = model.decoder.chat_format
        self.persona_ids = {p.id: persona_block(model.decoder.tokenizer, p, fmt=fmt) for p in personas}
        table = model.decoder.lm.get_input_embeddings()
        with torch.inference_mode():
            for p in personas:
                _, cache = model.decoder(table(torch.tensor([self.persona_ids[p.id]])))
                self.persona_kv[p.id] = [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]

    def live_cache_for(self, model: NpcModel, persona_id: str, batch: int) -> DynamicCache:
        return persona_cache(model, self.persona_ids[persona_id], batch)

    def cache_for(self, persona_id: str, batch: int, config) -> DynamicCache:
        layers = [
            (k.expand(batch, -1, -1, -1).contiguous(), v.expand(batch, -1, -1, -1).contiguous())
            for k, v in self.persona_kv[persona_id]
        ]
        return DynamicCache(layers, config=config)


def _word_starts(tok, words: Sequence[str]) -> set[int]:
    """First tokens of the words as they appear mid-sentence and capitalised (" slime", " Slime")."""
    ids = set()
    for w in words:
        for spelling in (" " + w, " " + w[:1].upper() + w[1:]):
            enc = tok.encode(spelling, add_special_tokens=False).ids
            if len(enc) == 1 or (enc and len(tok.decode([enc[0]]).strip()) >= 4):
                ids.add(enc[0])  # whole words, or long first pieces that are no word of their own
    return ids


def build_examples(
    model: NpcModel,
    items: Sequence[DialogueItem],
    personas: dict[str, Persona],
    pictures: dict[str, Picture],
    max_reply_tokens: int,
    grounding_weight: float = 1.0,
) -> list[Example]:
    tok, fmt = model.decoder.tokenizer, model.decoder.chat_format
    vocab = {t.name: t for t in model.vocabulary}
    lexicon = {w.lower() for t in model.vocabulary if t.kind != "time" for w in t.words}
    starts = {t.name: _word_starts(tok, t.words) for t in model.vocabulary if t.kind != "time"}

    def weight(token_id: int) -> float:
        # a token that is a whole lexicon word (" slime", " coins"): what grounding needs the decoder to say
        word = tok.decode([token_id]).strip().lower()
        return grounding_weight if word in lexicon else 1.0

    def enc(s: str) -> list[int]:
        return tok.encode(s, add_special_tokens=False).ids

    out = []
    for item in items:
        persona, picture = personas[item.persona_id], pictures[item.scene]
        note = scene_note(model, picture.tags)
        context = turn_context(tok, persona, [], item.line) + note
        target = enc(item.reply)[:max_reply_tokens] + [model.decoder.eos_id]
        absent = sorted({i for name, ids in starts.items() if name not in picture.tags for i in ids})
        out.append(
            Example(
                item.persona_id,
                item.scene,
                item.line,
                enc(fmt.user_start),
                enc(f"{context}{item.line}{fmt.generation}"),
                target,
                [weight(t) for t in target],
                absent if vocab else [],
            )
        )
    return out


def reply_loss(
    model: NpcModel,
    feats: Features,
    batch: Sequence[Example],
    *,
    unlikelihood_weight: float = 0.0,
    shuffle_images: bool = False,
    live_persona: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy of the reply tokens, unlikelihood of absent categories), one persona per batch."""
    fusion, table = model.fusion, model.decoder.lm.get_input_embeddings()
    files = [e.scene for e in batch]
    if shuffle_images:
        files = files[1:] + files[:1]
    v_I = torch.stack([feats.v_I[f][0] for f in files])
    v_mid = torch.stack([feats.v_I[f][1] for f in files])
    texts = [feats.v_T[e.line] for e in batch]
    width = max(t[0].shape[1] for t in texts)
    v_T = torch.cat([F.pad(t[0], (0, 0, 0, width - t[0].shape[1])) for t in texts])
    mask = torch.cat([F.pad(t[1], (0, width - t[1].shape[1])) for t in texts])
    v_R = torch.cat([feats.v_R[e.persona_id] for e in batch])
    prefix, _ = fusion(v_I, v_mid, torch.ones(len(batch)), v_T, mask, v_R)  # [B, P, H]

    rows, spans = [], []
    for i, e in enumerate(batch):
        with torch.no_grad():
            pre, post, tgt = (table(torch.tensor(ids)) for ids in (e.pre, e.post, e.target))
        rows.append(torch.cat([pre, prefix[i], post, tgt]))
        start = len(e.pre) + prefix.shape[1] + len(e.post)
        spans.append((start, len(e.target)))
    length = max(r.shape[0] for r in rows)
    embeds = torch.stack([F.pad(r, (0, 0, 0, length - r.shape[0])) for r in rows])
    if live_persona:
        cache = feats.live_cache_for(model, batch[0].persona_id, len(batch))
    else:
        cache = feats.cache_for(batch[0].persona_id, len(batch), model.decoder.lm.config)
    weights = [e.weights or [1.0] * len(e.target) for e in batch]
    return target_losses(model, embeds, cache, spans, batch, weights, bool(unlikelihood_weight))


def persona_cache(model: NpcModel, ids: Sequence[int], batch: int, *, grad: bool = True) -> DynamicCache:
    """A persona prompt run through the decoder as it is now (LoRA changes it), once, shared by the batch."""
    table = model.decoder.lm.get_input_embeddings()
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
        _, cache = model.decoder(table(torch.tensor([list(ids)])))
    layers = [
        (layer.keys.expand(batch, -1, -1, -1), layer.values.expand(batch, -1, -1, -1))
        for layer in cache.layers
    ]
    return DynamicCache(layers, config=model.decoder.lm.config)


def target_logits(
    model: NpcModel,
    embeds: torch.Tensor,  # [B, T, hidden] the rows after the cached persona
    cache: DynamicCache,
    spans: Sequence[tuple[int, int]],  # per row: where its target starts, and how many tokens
) -> torch.Tensor:
    """[sum of target lengths, vocab]: the logits that predict each row's target tokens, rows one after another."""
    past = cache.get_seq_length()
    positions = torch.arange(past, past + embeds.shape[1]).unsqueeze(0)
    lm = model.decoder.lm
    # hidden states for every position, but the vocabulary projection only where a reply token is predicted
    hidden = lm.model(
        inputs_embeds=embeds, position_ids=positions, cache=cache, use_cache=True
    ).last_hidden_state
    picked = torch.cat([hidden[i, start - 1 : start - 1 + n] for i, (start, n) in enumerate(spans)])
    return lm.lm_head(picked)


def target_losses(
    model: NpcModel,
    embeds: torch.Tensor,  # [B, T, hidden] the rows after the cached persona
    cache: DynamicCache,
    spans: Sequence[tuple[int, int]],  # per row: where its target starts, and how many tokens
    batch: Sequence,  # anything with `target` and `absent` token lists
    weights: Sequence[Sequence[float]],  # per row, per target token
    unlikelihood: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weighted cross-entropy of the targets, unlikelihood of each row's `absent` first tokens)."""
    logits = target_logits(model, embeds, cache, spans)
    targets = torch.tensor([t for e in batch for t in e.target])
    w = torch.tensor([x for row in weights for x in row])
    ce = (F.cross_entropy(logits, targets, reduction="none") * w).sum() / w.sum()
    if not unlikelihood:
        return ce, torch.zeros(())
    probs = logits.softmax(-1)
    ul = []
    offset = 0
    for e in batch:
        n = len(e.target)
        if e.absent:
            p_absent = probs[offset : offset + n, e.absent].sum(-1).clamp(max=1 - 1e-6)
            ul.append(-torch.log1p(-p_absent).mean())
        offset += n
    return ce, (torch.stack(ul).mean() if ul else torch.zeros(()))


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def batches(examples: Sequence[Example], cfg: TrainConfig, rng: random.Random):
    """Endless batches of one persona each, personas drawn by how many examples they have."""
    by_persona: dict[str, list[Example]] = {}
    for e in examples:
        by_persona.setdefault(e.persona_id, []).append(e)
    ids = sorted(by_persona)
    weights = [len(by_persona[i]) for i in ids]
    while True:
        pid = rng.choices(ids, weights)[0]
        pool = by_persona[pid]
        yield rng.sample(pool, min(cfg.batch, len(pool)))


def plot_losses(
    path: Path, reply: Sequence[float], other: Sequence[float], other_name: str = "unlikelihood"
) -> None:
    """A loss-curve PNG without a plotting library: reply loss (and its moving average) and a second loss."""
    w, h, pad = 720, 360, 40
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    top = max(max(reply, default=1), max(other, default=1), 1e-3)
    n = max(len(reply), 2)

    def xy(i: int, v: float) -> tuple[float, float]:
        return pad + (w - 2 * pad) * i / (n - 1), h - pad - (h - 2 * pad) * v / top

    d.rectangle([pad, pad, w - pad, h - pad], outline="black")
    for series, colour in ((other, (200, 120, 0)), (reply, (150, 170, 230))):
        if len(series) > 1:
            d.line([xy(i, v) for i, v in enumerate(series)], fill=colour, width=1)
    avg = [float(np.mean(reply[max(0, i - 19) : i + 1])) for i in range(len(reply))]
    if len(avg) > 1:
        d.line([xy(i, v) for i, v in enumerate(avg)], fill=(20, 40, 160), width=2)
    d.text(
        (pad, 10),
        f"reply loss (blue, 20-step mean dark), {other_name} (orange); y max {top:.2f}",
        fill="black",
    )
    d.text((pad, h - pad + 10), f"step 0 .. {len(reply)}", fill="black")
    img.save(path)


def train_dialogue(
    model: NpcModel,
    dataset: Dataset,
    items: Sequence[DialogueItem],
    personas: Sequence[Persona],
    out: Path,
    cfg: TrainConfig,
    *,
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Fusion + LoRA on teacher replies about the dataset's training pictures."""
    by_id = {p.id: p for p in personas}
    items = [i for i in items if i.persona_id in by_id]
    train_pics = dataset.split("train")
    index = {p.image.name: k for k, p in enumerate(train_pics)}
    pictures = {p.image.name: p for p in train_pics}
    items = [i for i in items if i.scene in index]
    log(
        f"training on {len(items)} replies about {len({i.scene for i in items})} scenes from {len(personas)} personas"
    )
    trunk_all = FeatureCache(dataset.folder / "features", "train").build(
        model.image_encoder, [p.image for p in train_pics], log=log
    )
    trunk = {
        f: (np.asarray(trunk_all[0][index[f]]), np.asarray(trunk_all[1][index[f]]))
        for f in {i.scene for i in items}
    }
    feats = Features(model, pictures, trunk, personas, [i.line for i in items], log=log)
    examples = build_examples(model, items, by_id, pictures, cfg.max_reply_tokens, cfg.grounding_weight)

    def loss_of(batch: Sequence[Example], live: bool) -> tuple[torch.Tensor, torch.Tensor]:
        return reply_loss(model, feats, batch, unlikelihood_weight=cfg.unlikelihood_weight, live_persona=live)

    summary = optimise(model, examples, loss_of, out, cfg, resume=resume, log=log)
    summary["personas"] = [p.id for p in personas]
    return summary


@dataclass
class _Trainable:
    """What one optimise run updates: the fusion (its head frozen) and, with a rank, fresh LoRA adapters."""

    params: list[torch.nn.Parameter]
    lora: list[torch.nn.Parameter]
    opt: torch.optim.Optimizer
    flags: list[tuple[torch.nn.Parameter, bool]]  # the caller's requires_grad flags, given back at the end


def _trainable(model: NpcModel, cfg: TrainConfig, log: Callable[[str], None]) -> _Trainable:
    fusion = model.fusion
    # which parameters train is this run's business: the caller's model gets its flags back at the end
    flags = [(p, p.requires_grad) for p in [*fusion.parameters(), *model.decoder.lm.parameters()]]
    fusion.train()
    for p in model.decoder.lm.parameters():
        p.requires_grad_(False)
    for p in fusion.tag_head.parameters():  # the head was trained and calibrated in stage 1
        p.requires_grad_(False)
    params = [p for p in fusion.parameters() if p.requires_grad]
    groups = [{"params": params, "base_lr": cfg.lr}]
    targets = TARGETS + (MLP_TARGETS if cfg.lora_mlp else ())
    lora_params = add_lora(model.decoder.lm, cfg.lora_rank, cfg.lora_alpha, targets) if cfg.lora_rank else []
    if lora_params:
        groups.append({"params": lora_params, "base_lr": cfg.lora_lr, "weight_decay": 0.0})
        params = params + lora_params
        log(
            f"  LoRA rank {cfg.lora_rank} on {', '.join(targets)}: {sum(p.numel() for p in lora_params):,} parameters"
        )
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return _Trainable(params, lora_params, opt, flags)


@dataclass
class _Progress:
    """The run's position: steps done, loss histories, time spent, random streams (all in the checkpoint)."""

    step: int = 0
    reply: list[float] = field(default_factory=list)
    unlikelihood: list[float] = field(default_factory=list)
    elapsed: float = 0.0


def _save_checkpoint(ckpt: Path, model: NpcModel, run: _Trainable, progress: _Progress, rng, cfg) -> None:
    tmp = ckpt.with_suffix(".tmp")
    torch.save(
        {
            "fusion": model.fusion.state_dict(),
            "lora": [p.detach().clone() for p in run.lora],
            "optimizer": run.opt.state_dict(),
            "step": progress.step,
            "reply": progress.reply,
            "unlikelihood": progress.unlikelihood,
            "elapsed": progress.elapsed,
            "rng": rng.getstate(),
            "torch_rng": torch.get_rng_state(),
            "config": asdict(cfg),
        },
        tmp,
    )
    tmp.replace(ckpt)


def _load_checkpoint(ckpt: Path, model: NpcModel, run: _Trainable, rng) -> _Progress:
    state = torch.load(ckpt, weights_only=False)
    model.fusion.load_state_dict(state["fusion"])
    for p, saved in zip(run.lora, state.get("lora", []), strict=True):
        p.data.copy_(saved)
    run.opt.load_state_dict(state["optimizer"])
    rng.setstate(state["rng"])
    torch.set_rng_state(state["torch_rng"])
    return _Progress(state["step"], state["reply"], state["unlikelihood"], state["elapsed"])


def _log_step(progress: _Progress, cfg: TrainConfig, log: Callable[[str], None]) -> None:
    step, elapsed = progress.step, progress.elapsed
    eta = elapsed / step * (cfg.steps - step) if step else 0
    line = (
        f"  step {step}/{cfg.steps}  reply loss {np.mean(progress.reply[-20:]):.3f}  unlikelihood "
        f"{np.mean(progress.unlikelihood[-20:]):.4f}  {elapsed / step:.1f} s/step  eta {eta / 60:.1f} min"
    )
    if sys.stderr.isatty():
        print("\r" + line, end="", file=sys.stderr, flush=True)
    elif step % 10 == 0 or step == cfg.steps:
        log(line)


def optimise(
    model: NpcModel,
    examples: Sequence,
    loss_of: Callable[[Sequence, bool], tuple[torch.Tensor, torch.Tensor]],
    out: Path,
    cfg: TrainConfig,
    *,
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """The fusion (head frozen) and LoRA adapters trained on `examples` (anything with a `persona_id`) by
    `loss_of(batch, live_persona)`; checkpoints, Ctrl-C, resume. Writes out/decoder_lora.safetensors when done."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    run = _trainable(model, cfg, log)
    ckpt = out / "checkpoint.pt"
    progress = _Progress()
    if resume and ckpt.is_file():
        progress = _load_checkpoint(ckpt, model, run, rng)
        log(f"resumed from {ckpt} at step {progress.step}")
    elif not model.fusion.is_trained:
        with torch.no_grad():  # open the gate: training starts with the prefix switched on
            model.fusion.gate.fill_(1.0)
    stop = {"now": False}

    def on_interrupt(_sig, _frame) -> None:
        stop["now"] = True

    previous = signal.signal(signal.SIGINT, on_interrupt)
    stream = batches(examples, cfg, rng)
    started = time.perf_counter() - progress.elapsed
    try:
        while progress.step < cfg.steps and not stop["now"]:
            batch = next(stream)
            for group in run.opt.param_groups:
                group["lr"] = lr_at(progress.step, cfg) * group["base_lr"] / cfg.lr
            ce, ul = loss_of(batch, bool(run.lora))
            run.opt.zero_grad()
            (ce + cfg.unlikelihood_weight * ul).backward()
            torch.nn.utils.clip_grad_norm_(run.params, 1.0)
            run.opt.step()
            progress.step += 1
            progress.reply.append(round(ce.item(), 4))
            progress.unlikelihood.append(round(ul.item(), 4))
            progress.elapsed = time.perf_counter() - started
            _log_step(progress, cfg, log)
            if progress.step % cfg.checkpoint_every == 0:
                _save_checkpoint(ckpt, model, run, progress, rng, cfg)
    finally:
        signal.signal(signal.SIGINT, previous)
        if sys.stderr.isatty():
            print(file=sys.stderr)
    _save_checkpoint(ckpt, model, run, progress, rng, cfg)
    model.fusion.eval()
    plot_losses(out / "loss_curve.png", progress.reply, progress.unlikelihood)
    summary = _summary(examples, progress, cfg)
    if progress.step >= cfg.steps and run.lora:
        save_lora(model.decoder.lm, out / "decoder_lora.safetensors")
    remove_lora(model.decoder.lm, merge=False)  # the caller's model is left as it came
    for p, wanted in run.flags:
        p.requires_grad_(wanted)
    return summary


def _summary(examples: Sequence, progress: _Progress, cfg: TrainConfig) -> dict:
    reply, ul = progress.reply, progress.unlikelihood
    return {
        "config": asdict(cfg),
        "examples": len(examples),
        "steps_done": progress.step,
        "finished": progress.step >= cfg.steps,
        "seconds": round(progress.elapsed, 1),
        "reply_loss_first20": round(float(np.mean(reply[:20])), 4) if reply else None,
        "reply_loss_last20": round(float(np.mean(reply[-20:])), 4) if reply else None,
        "unlikelihood_last20": round(float(np.mean(ul[-20:])), 4) if ul else None,
        "reply_loss": reply,
        "unlikelihood": ul,
    }


def train(
    model: NpcModel,
    dataset: Dataset,
    items: Sequence[DialogueItem],
    personas: Sequence[Persona],
    out: Path,
    cfg: TrainConfig,
    *,
    stages: Sequence[str] = ("head", "dialogue"),
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Both stages (or the ones asked for); writes out/fusion.safetensors when every asked stage finished."""
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"stages": list(stages)}
    started = time.perf_counter()
    if "head" in stages:
        head_done = out / "head.safetensors"
        if resume and head_done.is_file():
            from ..model.reference import read_fusion_file

            state, _, _ = read_fusion_file(head_done)
            model.fusion.load_state_dict(state)
            log(f"head: resumed from {head_done}")
        else:
            log("stage 1/2: grounding head")
            summary["head"] = train_grounding(model, dataset, out, cfg.head, log=log)
            save_fusion(model.fusion, model.vocabulary, head_done, model.decoder.source.sha256)
    finished = True
    if "dialogue" in stages:
        log("stage 2/2: dialogue (fusion + decoder LoRA)")
        summary["dialogue"] = train_dialogue(
            model, dataset, items, personas, out, cfg, resume=resume, log=log
        )
        finished = summary["dialogue"]["finished"]
    summary["finished"] = finished
    summary["seconds"] = round(time.perf_counter() - started, 1)
    if finished:
        save_fusion(model.fusion, model.vocabulary, out / "fusion.safetensors", model.decoder.source.sha256)
    log_path = out / "train_log.json"
    previous = json.loads(log_path.read_text()) if log_path.is_file() else {}
    (out / "train_log.json").write_text(json.dumps({**previous, **summary}, indent=2) + "\n")
    return summary


def vocabulary_of(dataset: Dataset) -> list[TagInfo]:
    return list(dataset.vocabulary)
