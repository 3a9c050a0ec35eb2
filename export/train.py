"""`npc-sdk train`: teach the fusion to turn a screenshot into prefix vectors the frozen decoder can use.

What trains: the co-attention fusion and its projector to the decoder (`CoAttentionFusion`), including the
grounding head. What stays frozen: the image, text and role encoders and the decoder. Their outputs are computed
once: v_I per picture, v_T per line, v_R per persona, and the decoder's KV state of each persona's prompt, which
comes before the prefix and so never depends on the fusion. A step therefore runs the decoder only over
"<|im_start|>user\\n [prefix] line ... assistant\\n reply<|im_end|>" for a batch of one persona's examples, with
that persona's cached KV state in front.

Loss: next-token cross-entropy on the reply tokens, plus `tag_weight` x binary cross-entropy of the grounding
head against the scene labels (on the batch's pictures and `tag_batch` more). The tag head is first warmed up on
its own for `tag_warmup` steps (seconds: it only reads cached image features).

Checkpoints every `checkpoint_every` steps and on Ctrl-C (out/checkpoint.pt); `resume=True` continues from one.
Writes out/fusion.safetensors, out/train_log.json and out/loss_curve.png.
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
from safetensors.torch import save_file
from transformers import DynamicCache

from npc_sdk.personas.persona import Persona
from npc_sdk.personas.prompt import IM_END, IM_START, persona_block, turn_context

from .dialogue_data import DialogueItem
from .lora import add_lora, remove_lora, save_lora
from .model import NpcModel
from .scene_lexicon import CATEGORIES
from .scenes import Scene


@dataclass
class TrainConfig:
    steps: int = 300
    batch: int = 8
    lr: float = 5e-4
    warmup: int = 20
    weight_decay: float = 0.01
    tag_weight: float = 1.0
    tag_batch: int = 32
    tag_warmup: int = 300
    max_reply_tokens: int = 40
    checkpoint_every: int = 25
    seed: int = 0
    lora_rank: int = 0  # > 0: LoRA adapters on the decoder's attention projections train too
    lora_alpha: float = 16.0
    lora_lr: float = 3e-4
    grounding_weight: float = 1.0  # loss weight of reply tokens that name a scene category (lexicon words)


@dataclass
class Example:
    persona_id: str
    scene: str
    line: str
    pre: list[int]  # "<|im_start|>user\n" (before the prefix)
    post: list[int]  # turn context + line + end of turn + "<|im_start|>assistant\n"
    target: list[int]  # reply + <|im_end|>
    weights: list[float] = field(default_factory=list)  # per target token: grounding words count more


class Features:
    """Frozen inputs computed once: v_I per scene, v_T per line, v_R per persona, KV state per persona prompt."""

    def __init__(
        self,
        model: NpcModel,
        scenes: Sequence[Scene],
        images: Path,
        personas: Sequence[Persona],
        lines: Sequence[str],
        log: Callable[[str], None] = print,
    ) -> None:
        self.scenes = {s.file: s for s in scenes}
        self.tag_index = {w: i for i, w in enumerate(model.fusion.cfg.tag_words)}
        log(f"  image features for {len(scenes)} scenes")
        with torch.inference_mode():
            self.v_I = {s.file: model.encode_image((images / s.file).read_bytes())[0].clone() for s in scenes}
            self.v_T = {line: tuple(t.clone() for t in model.encode_text(line)) for line in set(lines)}
            self.v_R = {p.id: model.encode_role(p).clone() for p in personas}
        log(f"  KV state of {len(personas)} persona prompts")
        self.persona_kv: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.persona_ids = {p.id: persona_block(model.decoder.tokenizer, p) for p in personas}
        table = model.decoder.lm.get_input_embeddings()
        with torch.inference_mode():
            for p in personas:
                _, cache = model.decoder(table(torch.tensor([self.persona_ids[p.id]])))
                self.persona_kv[p.id] = [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]

    def labels(self, files: Sequence[str]) -> torch.Tensor:
        y = torch.zeros(len(files), len(self.tag_index))
        for row, f in enumerate(files):
            scene = self.scenes[f]
            for name in [*scene.categories, scene.time]:
                y[row, self.tag_index[name]] = 1.0
        return y

    def live_cache_for(self, model: NpcModel, persona_id: str, batch: int) -> DynamicCache:
        """The persona prompt run through the decoder as it is now (LoRA changes it), once, shared by the batch."""
        table = model.decoder.lm.get_input_embeddings()
        _, cache = model.decoder(table(torch.tensor([self.persona_ids[persona_id]])))
        layers = [
            (layer.keys.expand(batch, -1, -1, -1), layer.values.expand(batch, -1, -1, -1))
            for layer in cache.layers
        ]
        return DynamicCache(layers, config=model.decoder.lm.config)

    def cache_for(self, persona_id: str, batch: int, config) -> DynamicCache:
        layers = [
            (k.expand(batch, -1, -1, -1).contiguous(), v.expand(batch, -1, -1, -1).contiguous())
            for k, v in self.persona_kv[persona_id]
        ]
        return DynamicCache(layers, config=config)


def build_examples(
    model: NpcModel,
    items: Sequence[DialogueItem],
    personas: dict[str, Persona],
    max_reply_tokens: int,
    grounding_weight: float = 1.0,
) -> list[Example]:
    tok = model.decoder.tokenizer
    lexicon = {w for c in CATEGORIES for w in c.words}

    def weight(token_id: int) -> float:
        # a token that is a whole lexicon word (" slime", " coins"): what grounding needs the decoder to say
        word = tok.decode([token_id]).strip().lower()
        return grounding_weight if word in lexicon else 1.0

    def enc(s: str) -> list[int]:
        return tok.encode(s, add_special_tokens=False).ids

    out = []
    for item in items:
        persona = personas[item.persona_id]
        context = turn_context(tok, persona, [], item.line)
        target = enc(item.reply)[:max_reply_tokens] + enc(IM_END)
        out.append(
            Example(
                item.persona_id,
                item.scene,
                item.line,
                enc(f"{IM_START}user\n"),
                enc(f"{context}{item.line}{IM_END}\n{IM_START}assistant\n"),
                target,
                [weight(t) for t in target],
            )
        )
    return out


def reply_loss(
    model: NpcModel,
    feats: Features,
    batch: Sequence[Example],
    shuffle_images: bool = False,
    live_persona: bool = False,
) -> torch.Tensor:
    """Mean cross-entropy of the reply tokens, given prefix vectors from the fusion (one persona per batch)."""
    fusion, table = model.fusion, model.decoder.lm.get_input_embeddings()
    files = [e.scene for e in batch]
    if shuffle_images:
        files = files[1:] + files[:1]
    v_I = torch.stack([feats.v_I[f] for f in files])
    texts = [feats.v_T[e.line] for e in batch]
    width = max(t[0].shape[1] for t in texts)
    v_T = torch.cat([F.pad(t[0], (0, 0, 0, width - t[0].shape[1])) for t in texts])
    mask = torch.cat([F.pad(t[1], (0, width - t[1].shape[1])) for t in texts])
    v_R = torch.cat([feats.v_R[e.persona_id] for e in batch])
    prefix = fusion(v_I, torch.ones(len(batch)), v_T, mask, v_R)  # [B, P, H]

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
    past = cache.get_seq_length()
    positions = torch.arange(past, past + length).unsqueeze(0)
    lm = model.decoder.lm
    # hidden states for every position, but the vocabulary projection only where a reply token is predicted
    hidden = lm.model(
        inputs_embeds=embeds, position_ids=positions, cache=cache, use_cache=True
    ).last_hidden_state
    picked = torch.cat([hidden[i, start - 1 : start - 1 + n] for i, (start, n) in enumerate(spans)])
    targets = torch.tensor([t for e in batch for t in e.target])
    weights = torch.tensor([w for e in batch for w in (e.weights or [1.0] * len(e.target))])
    losses = F.cross_entropy(lm.lm_head(picked), targets, reduction="none")
    return (losses * weights).sum() / weights.sum()


def tag_loss(model: NpcModel, feats: Features, files: Sequence[str]) -> torch.Tensor:
    v_I = torch.stack([feats.v_I[f] for f in files])
    return F.binary_cross_entropy_with_logits(model.fusion.tag_logits(v_I), feats.labels(files))


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


def plot_losses(path: Path, reply: Sequence[float], tag: Sequence[float]) -> None:
    """A loss-curve PNG without a plotting library: reply loss (and its moving average) and tag loss."""
    w, h, pad = 720, 360, 40
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    top = max(max(reply, default=1), max(tag, default=1), 1e-3)
    n = max(len(reply), 2)

    def xy(i: int, v: float) -> tuple[float, float]:
        return pad + (w - 2 * pad) * i / (n - 1), h - pad - (h - 2 * pad) * v / top

    d.rectangle([pad, pad, w - pad, h - pad], outline="black")
    for series, colour in ((tag, (200, 120, 0)), (reply, (150, 170, 230))):
        if len(series) > 1:
            d.line([xy(i, v) for i, v in enumerate(series)], fill=colour, width=1)
    avg = [float(np.mean(reply[max(0, i - 19) : i + 1])) for i in range(len(reply))]
    if len(avg) > 1:
        d.line([xy(i, v) for i, v in enumerate(avg)], fill=(20, 40, 160), width=2)
    d.text(
        (pad, 10), f"reply loss (blue, 20-step mean dark), tag loss (orange); y max {top:.2f}", fill="black"
    )
    d.text((pad, h - pad + 10), f"step 0 .. {len(reply)}", fill="black")
    img.save(path)


def train(
    model: NpcModel,
    scenes: Sequence[Scene],
    images: Path,
    items: Sequence[DialogueItem],
    personas: Sequence[Persona],
    out: Path,
    cfg: TrainConfig,
    *,
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    by_id = {p.id: p for p in personas}
    items = [i for i in items if i.persona_id in by_id]
    scenes = list(
        scenes
    )  # all of them: the tag head learns from every labelled picture, with or without dialogue
    talked_about = len({i.scene for i in items})
    log(
        f"training on {len(items)} replies about {talked_about} scenes from {len(personas)} personas; "
        f"tag head on all {len(scenes)} scenes"
    )
    feats = Features(model, scenes, images, personas, [i.line for i in items], log=log)
    examples = build_examples(model, items, by_id, cfg.max_reply_tokens, cfg.grounding_weight)

    fusion = model.fusion
    fusion.train()
    for p in model.decoder.lm.parameters():
        p.requires_grad_(False)
    params = [p for p in fusion.parameters() if p.requires_grad]
    groups = [{"params": params, "base_lr": cfg.lr}]
    lora_params = add_lora(model.decoder.lm, cfg.lora_rank, cfg.lora_alpha) if cfg.lora_rank else []
    if lora_params:
        groups.append({"params": lora_params, "base_lr": cfg.lora_lr, "weight_decay": 0.0})
        params = params + lora_params
        log(f"  LoRA rank {cfg.lora_rank} on the decoder: {sum(p.numel() for p in lora_params):,} parameters")
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt = out / "checkpoint.pt"
    step, reply_hist, tag_hist, elapsed = 0, [], [], 0.0
    if resume and ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        fusion.load_state_dict(state["fusion"])
        for p, saved in zip(lora_params, state.get("lora", []), strict=True):
            p.data.copy_(saved)
        opt.load_state_dict(state["optimizer"])
        step, reply_hist, tag_hist, elapsed = state["step"], state["reply"], state["tag"], state["elapsed"]
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        log(f"resumed from {ckpt} at step {step}")
    else:
        with torch.no_grad():  # open both gates: training starts with the prefix switched on
            fusion.gate.fill_(1.0)
            fusion.tag_gate.fill_(2.0)
        head_opt = torch.optim.AdamW(fusion.tag_head.parameters(), lr=2e-3)
        files = [s.file for s in scenes]
        for i in range(cfg.tag_warmup):
            loss = tag_loss(model, feats, rng.sample(files, min(cfg.tag_batch * 2, len(files))))
            head_opt.zero_grad()
            loss.backward()
            head_opt.step()
            if (i + 1) % 100 == 0:
                log(f"  tag head warm-up {i + 1}/{cfg.tag_warmup}: loss {loss.item():.4f}")

    def save_checkpoint() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save(
            {
                "fusion": fusion.state_dict(),
                "lora": [p.detach().clone() for p in lora_params],
                "optimizer": opt.state_dict(),
                "step": step,
                "reply": reply_hist,
                "tag": tag_hist,
                "elapsed": elapsed,
                "rng": rng.getstate(),
                "torch_rng": torch.get_rng_state(),
                "config": asdict(cfg),
            },
            tmp,
        )
        tmp.replace(ckpt)

    stop = {"now": False}

    def on_interrupt(_sig, _frame) -> None:
        stop["now"] = True

    previous = signal.signal(signal.SIGINT, on_interrupt)
    stream = batches(examples, cfg, rng)
    all_files = [s.file for s in scenes]
    started = time.perf_counter() - elapsed
    try:
        while step < cfg.steps and not stop["now"]:
            batch = next(stream)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg) * group["base_lr"] / cfg.lr
            r_loss = reply_loss(model, feats, batch, live_persona=bool(lora_params))
            t_loss = tag_loss(
                model,
                feats,
                [e.scene for e in batch] + rng.sample(all_files, min(cfg.tag_batch, len(all_files))),
            )
            opt.zero_grad()
            (r_loss + cfg.tag_weight * t_loss).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            reply_hist.append(round(r_loss.item(), 4))
            tag_hist.append(round(t_loss.item(), 4))
            elapsed = time.perf_counter() - started
            eta = elapsed / step * (cfg.steps - step) if step else 0
            recent = float(np.mean(reply_hist[-20:]))
            line = (
                f"  step {step}/{cfg.steps}  reply loss {recent:.3f}  tag loss {t_loss.item():.3f}  "
                f"{elapsed / step:.1f} s/step  eta {eta / 60:.1f} min"
            )
            if sys.stderr.isatty():
                print("\r" + line, end="", file=sys.stderr, flush=True)
            elif step % 10 == 0 or step == cfg.steps:
                log(line)
            if step % cfg.checkpoint_every == 0:
                save_checkpoint()
    finally:
        signal.signal(signal.SIGINT, previous)
        if sys.stderr.isatty():
            print(file=sys.stderr)
    save_checkpoint()
    fusion.eval()
    plot_losses(out / "loss_curve.png", reply_hist, tag_hist)
    summary = {
        "config": asdict(cfg),
        "examples": len(examples),
        "scenes": len(scenes),
        "personas": [p.id for p in personas],
        "steps_done": step,
        "finished": step >= cfg.steps,
        "seconds": round(elapsed, 1),
        "reply_loss_first20": round(float(np.mean(reply_hist[:20])), 4) if reply_hist else None,
        "reply_loss_last20": round(float(np.mean(reply_hist[-20:])), 4) if reply_hist else None,
        "tag_loss_last20": round(float(np.mean(tag_hist[-20:])), 4) if tag_hist else None,
        "reply_loss": reply_hist,
        "tag_loss": tag_hist,
    }
    if step >= cfg.steps and lora_params:
        save_lora(model.decoder.lm, out / "decoder_lora.safetensors")
    remove_lora(model.decoder.lm, merge=False)  # the caller's model is left as it came
    if step >= cfg.steps:
        # float16 on disk halves what git carries; loading widens it back to float32
        save_file(
            {k: v.detach().half().contiguous() for k, v in fusion.state_dict().items()},
            str(out / "fusion.safetensors"),
        )
    (out / "train_log.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
