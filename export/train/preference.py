"""Preference training (DPO) on the authored corpus: which of two replies to one turn is the better.

Training on written replies alone (corpus_train.py) never tells the decoder which of its own habits are wrong: read
blind, most of its failures are clauses that do not hold together ("The spike stays on the chart till morning."),
and more written data and more steps did not move them (docs/training.md). Here every pair is one corpus item of a
training persona, rendered exactly as in corpus_train.py, with two targets: the written reply (chosen) and the reply
the shipped model gave to the same turn (rejected, from `npc-sdk eval --corpus --corpus-split train`), or, from
replies the model gave that were read and labelled, an acceptable one against one that is not. The loss is
Direct Preference Optimisation (Rafailov et al., 2023) against the shipped model as the reference, plus a small
cross-entropy on the chosen reply so its likelihood does not sink with the rejected one's.

The decoder starts as the shipped one (committed LoRA merged); a fresh LoRA trains on top, and the reference is
the same model with that LoRA switched off. The fusion stays frozen. What is written is one adapter file holding
both: the committed adapters and the new ones side by side (rank 8 + 8), which merges into the same weights.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from npc_sdk.personas.persona import Persona

from ..data.corpus import CorpusItem
from ..data.datasets import jsonl_records
from ..model.lora import LoRALinear, _targets, add_lora, remove_lora
from ..model.reference import NpcModel
from .corpus_train import (
    CorpusExample,
    CorpusFeatures,
    assemble_rows,
    build_corpus_examples,
    corpus_features,
)
from .train import batches, lr_at, target_logits


@dataclass(frozen=True)
class PreferenceConfig:
    steps: int = 300
    pairs: int = 4  # pairs per batch (one persona), so 2x rows
    lr: float = 1e-4
    warmup: int = 10
    beta: float = 0.1  # DPO temperature: how far from the reference the policy may move per unit of margin
    chosen_nll: float = 0.2  # weight of the written reply's mean token cross-entropy
    rank: int = 8
    alpha: float = 16.0
    max_reply_tokens: int = 48
    seed: int = 0
    log_every: int = 10

    @property
    def batch(self) -> int:  # train.batches draws this many of one persona
        return self.pairs


@dataclass(frozen=True)
class Pair:
    persona_id: str
    chosen: CorpusExample
    rejected: CorpusExample


# (chosen, rejected) reply texts of one corpus item; chosen None is the item's written reply
ReplyPair = tuple[str | None, str]
PAIRS_PER_ITEM = 4  # from labelled candidates: an item with 2 good and 3 bad replies would give 6


# one .jsonl or folder of them, or several (rounds of reading kept apart: `--preference A --preference B`)
Records = Path | Sequence[Path]


def _records(records: Records) -> list[tuple[int, dict]]:
    """(line number, object) of every non-blank line of the file, or of every .jsonl in the folder, or of each of
    several; a clear error naming the file and line otherwise."""
    if not isinstance(records, Path):
        return [row for path in records for row in _records(path)]
    if records.is_dir():
        files = sorted(records.glob("*.jsonl"))
        if not files:
            raise ValueError(f"{records}: a folder with no .jsonl files")
        return [row for path in files for row in _records(path)]
    try:
        rows = list(jsonl_records(records))
    except OSError as err:
        raise ValueError(f"{records}: cannot read the eval records ({err.strerror or err})") from err
    for n, row in rows:
        if "id" not in row or "reply" not in row:
            raise ValueError(f"{records}:{n}: id, reply: an eval record needs both")
        if "acceptable" in row and not isinstance(row["acceptable"], bool):
            raise ValueError(f"{records}:{n}: acceptable: must be true or false, got {row['acceptable']!r}")
    return rows


def read_rejected(records: Records, items: Sequence[CorpusItem]) -> dict[str, str]:
    """item id -> the model's own reply, from an eval's records (JSONL); replies equal to the written one, empty
    ones and items no longer in the corpus's training split are skipped."""
    return _own_replies(_records(records), items)


def _own_replies(rows: Sequence[tuple[int, dict]], items: Sequence[CorpusItem]) -> dict[str, str]:
    written = {i.id: i.reply for i in items if i.split == "train"}
    out: dict[str, str] = {}
    for _n, row in rows:
        reply = str(row["reply"]).strip()
        if row["id"] in written and reply and reply != written[row["id"]].strip():
            out[row["id"]] = reply
    return out


def read_preferences(records: Records, items: Sequence[CorpusItem]) -> dict[str, list[ReplyPair]]:
    """item id -> its reply pairs. A row read and labelled (`acceptable`, as in corpus/labels/) pairs with the
    other labelled replies to the same item: each acceptable one is preferred to each one that is not (at most
    PAIRS_PER_ITEM an item), so a pair differs in what a reader judged and not in who wrote it. A row without a
    label is an eval record: the written reply is preferred to it (read_rejected)."""
    rows = _records(records)
    train = {i.id for i in items if i.split == "train"}
    labelled: dict[str, tuple[list[str], list[str]]] = {}
    for _n, row in rows:
        reply = str(row["reply"]).strip()
        if "acceptable" not in row or row["id"] not in train or not reply:
            continue
        good, bad = labelled.setdefault(row["id"], ([], []))
        side = good if row["acceptable"] else bad
        if reply not in good and reply not in bad:
            side.append(reply)
    out: dict[str, list[ReplyPair]] = {}
    for item_id, (good, bad) in labelled.items():
        # every reply in a pair before any is used twice: (0, 0), (0, 1), (1, 0), (1, 1), (0, 2), ...
        crossed = sorted(
            ((g, b) for g in range(len(good)) for b in range(len(bad))), key=lambda gb: (max(gb), gb)
        )
        if crossed:
            out[item_id] = [(good[g], bad[b]) for g, b in crossed[:PAIRS_PER_ITEM]]
    for item_id, reply in _own_replies([r for r in rows if "acceptable" not in r[1]], items).items():
        if item_id not in labelled:
            out[item_id] = [(None, reply)]
    return out


def build_pairs(
    model: NpcModel,
    items: Sequence[CorpusItem],
    preferences: dict[str, list[ReplyPair]],
    personas: dict[str, Persona],
    pictures: dict,
    max_reply_tokens: int,
) -> list[Pair]:
    chosen_items = [i for i in items if i.id in preferences]
    examples = build_corpus_examples(model, chosen_items, personas, pictures, max_reply_tokens)
    tok, eos = model.decoder.tokenizer, model.decoder.eos_id

    def as_target(example: CorpusExample, text: str) -> CorpusExample:
        target = tok.encode(text, add_special_tokens=False).ids[:max_reply_tokens] + [eos]
        return replace(example, target=target, absent=[])

    pairs = []
    for item, written in zip(chosen_items, examples, strict=True):
        for chosen, rejected in preferences[item.id]:
            first = written if chosen is None else as_target(written, chosen)
            pairs.append(Pair(item.persona, first, as_target(written, rejected)))
    return pairs


def sequence_logprobs(model: NpcModel, feats: CorpusFeatures, rows: Sequence[CorpusExample]) -> torch.Tensor:
    """[B] summed log-probability of each row's target (one persona per batch)."""
    embeds, cache, spans = assemble_rows(model, feats, rows)
    logits = target_logits(model, embeds, cache, spans)
    targets = torch.tensor([t for r in rows for t in r.target])
    per_token = -F.cross_entropy(logits, targets, reduction="none")
    return torch.stack([part.sum() for part in per_token.split([n for _, n in spans])])


@contextmanager
def adapters_off(lm: torch.nn.Module) -> Iterator[None]:
    """The reference model: the new adapters contribute nothing while inside."""
    wrapped = [child for *_, child in _targets(lm) if isinstance(child, LoRALinear)]
    scales = [w.scale for w in wrapped]
    for w in wrapped:
        w.scale = 0.0
    try:
        yield
    finally:
        for w, s in zip(wrapped, scales, strict=True):
            w.scale = s


def dpo_loss(
    model: NpcModel, feats: CorpusFeatures, batch: Sequence[Pair], cfg: PreferenceConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    rows = [p.chosen for p in batch] + [p.rejected for p in batch]
    k = len(batch)
    with torch.no_grad(), adapters_off(model.decoder.lm):
        ref = sequence_logprobs(model, feats, rows)
    policy = sequence_logprobs(model, feats, rows)
    margin = (policy[:k] - ref[:k]) - (policy[k:] - ref[k:])
    dpo = -F.logsigmoid(cfg.beta * margin).mean()
    chosen_tokens = sum(len(p.chosen.target) for p in batch)
    nll = -policy[:k].sum() / chosen_tokens
    stats = {
        "dpo": dpo.item(),
        "nll": nll.item(),
        "reward_accuracy": (margin > 0).float().mean().item(),
        "margin": (cfg.beta * margin).mean().item(),
    }
    return dpo + cfg.chosen_nll * nll, stats


def stack_adapters(first: Path, lm: torch.nn.Module, out: Path) -> int:
    """Write `first`'s adapters and the model's live ones as one file (ranks side by side): merging it gives the
    weights both would give merged one after the other. Returns the rank."""
    live = {name: child for name, _p, _a, child in _targets(lm) if isinstance(child, LoRALinear)}
    tensors: dict[str, torch.Tensor] = {}
    with safe_open(str(first), framework="pt") as f:
        scale, meta = float(f.metadata()["scale"]), dict(f.metadata())
        names = sorted({k.rsplit(".", 1)[0] for k in f.keys()})
        if set(names) != set(live):
            raise ValueError(f"{first}: its adapters sit on other layers than the ones trained here")
        rank = 0
        for name in names:
            a1, b1 = f.get_tensor(f"{name}.A").float(), f.get_tensor(f"{name}.B").float()
            new = live[name]
            b2 = new.B.detach() * (new.scale / scale)  # one scale for the file: the new B carries the ratio
            tensors[f"{name}.A"] = torch.cat([a1, new.A.detach()]).half().contiguous()
            tensors[f"{name}.B"] = torch.cat([b1, b2], dim=1).half().contiguous()
            rank = tensors[f"{name}.A"].shape[0]
    save_file(tensors, str(out), metadata=meta)
    return rank


def train_preference(
    model: NpcModel,
    items: Sequence[CorpusItem],
    personas: dict[str, Persona],
    preferences: dict[str, list[ReplyPair]],
    committed_lora: Path,
    out: Path,
    cfg: PreferenceConfig,
    *,
    log: Callable[[str], None] = print,
) -> dict:
    """DPO on reply pairs of training personas (read_preferences); writes out/decoder_lora.safetensors (the committed
    adapters and the new ones) and out/preference_log.json. Ctrl-C stops after the current step and still writes
    them. `model` must carry the committed adapters merged (NpcModel.load's default)."""
    out.mkdir(parents=True, exist_ok=True)
    items = [i for i in items if i.split == "train" and i.id in preferences]
    pictures, used, feats = corpus_features(model, items, personas, out, log)
    pairs = build_pairs(model, items, preferences, used, pictures, cfg.max_reply_tokens)
    log(f"preference pairs: {len(pairs)} of {len(used)} personas, {len(pictures)} with a picture")
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    flags = [(p, p.requires_grad) for p in [*model.fusion.parameters(), *model.decoder.lm.parameters()]]
    for p, _ in flags:
        p.requires_grad_(False)
    model.fusion.eval()
    params = add_lora(model.decoder.lm, cfg.rank, cfg.alpha, tuple(_lora_targets(committed_lora)))
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    stop = {"now": False}
    previous = signal.signal(signal.SIGINT, lambda _s, _f: stop.update(now=True))
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    stream = batches(pairs, cfg, rng)
    try:
        for step in range(cfg.steps):
            if stop["now"]:
                break
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            loss, stats = dpo_loss(model, feats, next(stream), cfg)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            history.append({"step": step + 1, **{k: round(v, 4) for k, v in stats.items()}})
            if (step + 1) % cfg.log_every == 0 or step == 0:
                recent = history[-cfg.log_every :]
                avg = {k: sum(h[k] for h in recent) / len(recent) for k in stats}
                log(
                    f"  step {step + 1}/{cfg.steps}  dpo {avg['dpo']:.3f}  nll {avg['nll']:.3f}  "
                    f"reward acc {avg['reward_accuracy']:.2f}  margin {avg['margin']:.3f}  "
                    f"{time.perf_counter() - started:.0f} s"
                )
    finally:
        signal.signal(signal.SIGINT, previous)
    rank = stack_adapters(committed_lora, model.decoder.lm, out / "decoder_lora.safetensors")
    remove_lora(model.decoder.lm, merge=False)
    for p, wanted in flags:
        p.requires_grad_(wanted)
    summary = {
        "pairs": len(pairs),
        "personas": sorted(used),
        "steps_done": len(history),
        "finished": len(history) >= cfg.steps,
        "seconds": round(time.perf_counter() - started, 1),
        "rank": rank,
        "config": cfg.__dict__,
        "history": history,
    }
    (out / "preference_log.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _lora_targets(path: Path) -> list[str]:
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata().get("targets", "[]"))
