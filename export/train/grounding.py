"""The grounding head on its own: cached image features, training, per-tag thresholds, precision and recall.

The head reads the image encoder's grid (v_I, one 1280-d vector per 32x32 cell of the letterboxed canvas) and
says, per tag, how sure it is that the tag is somewhere in the picture (its best cell). It trains on pictures
labelled with the tags visible in them (`datasets.py`): the built-in Kenney scenes or a studio's own.

Features are computed once with the frozen encoder and kept on disk as float16 (`FeatureCache`): the trunk's
320-channel output, 4x smaller than v_I; the encoder's own head convolution (320 -> 1280, batch norm, ReLU6)
turns them into v_I when a batch is drawn, which is cheap and exactly what the runtime computes.

Thresholds: one per tag, chosen on the validation pictures as the lowest score at which the tag's precision
reaches `target_precision` (the highest-F1 one where it never does), so the tags the NPC is told about are
rarely wrong, and recall is what is left.
"""

from __future__ import annotations

import json
import math
import random
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from npc_sdk.runtime.images import preprocess

from ..model.fusion import CoAttentionFusion, pool_cells
from ..model.image_encoder import ImageEncoder


@dataclass
class HeadConfig:
    steps: int = 2000  # optimiser steps over the training pictures
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    target_precision: float = 0.95  # per-tag thresholds are set where validation precision reaches this
    cell_weight: float = 1.0  # weight of the per-cell loss where boxes say which cells hold a thing


class FeatureCache:
    """Trunk features of a list of pictures, float16 on disk, computed once: the stride-16 map
    [N, 112, rows*2, cols*2] (v_mid) and the last block's output [N, 320, rows, cols] (v_I before the head conv).

    The cache files are named by the pictures' names and sizes and the encoder weights' fingerprint, so a changed
    dataset or encoder computes anew instead of reading stale features.
    """

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.name = name

    def build(
        self,
        encoder: ImageEncoder,
        images: Sequence[Path],
        *,
        log: Callable[[str], None] = print,
    ) -> tuple[np.ndarray, np.ndarray]:
        key = _fingerprint(encoder, images)
        paths = [self.folder / f"{self.name}-{key}-{part}.f16" for part in ("mid", "top")]
        meta = self.folder / f"{self.name}-{key}.json"
        if meta.is_file() and all(p.is_file() for p in paths):
            shapes = json.loads(meta.read_text())["shapes"]
            return _open(paths, [tuple(shape) for shape in shapes])
        self.folder.mkdir(parents=True, exist_ok=True)
        session = _trunk_session(encoder, self.folder)
        probe = session.run(None, {"pixels": preprocess(images[0])})
        shapes = [(len(images), *t.shape[1:]) for t in probe]
        tmps = [p.with_suffix(".partial") for p in paths]
        outs = [
            np.memmap(t, dtype=np.float16, mode="w+", shape=shape)
            for t, shape in zip(tmps, shapes, strict=True)
        ]
        started = time.perf_counter()
        for i, image in enumerate(images):
            for out, t in zip(outs, session.run(None, {"pixels": preprocess(image)}), strict=True):
                out[i] = t[0].astype(np.float16)
            if (i + 1) % 500 == 0 or i + 1 == len(images):
                rate = (i + 1) / (time.perf_counter() - started)
                log(f"  image features {self.name}: {i + 1}/{len(images)} ({rate:.1f} pictures/s)")
        for out, tmp, path in zip(outs, tmps, paths, strict=True):
            out.flush()
            del out
            tmp.replace(path)
        meta.write_text(json.dumps({"shapes": shapes, "images": len(images)}))
        return _open(paths, shapes)


def _open(paths: Sequence[Path], shapes: Sequence[tuple]) -> tuple[np.ndarray, np.ndarray]:
    mid, top = (np.memmap(p, dtype=np.float16, mode="r", shape=s) for p, s in zip(paths, shapes, strict=True))
    return mid, top


def _trunk_session(encoder: ImageEncoder, folder: Path):
    """The trunk as an onnxruntime session (several times faster than torch eager on two cores)."""
    import tempfile
    import warnings

    import onnxruntime as ort

    from npc_sdk.runtime.images import IMAGE_HEIGHT, IMAGE_WIDTH

    class Trunk(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.encoder.trunk(pixels)

    with tempfile.TemporaryDirectory(dir=folder) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "trunk.onnx"
        dummy = torch.zeros(1, 3, IMAGE_HEIGHT, IMAGE_WIDTH)
        torch.onnx.export(
            Trunk().eval(),
            (dummy,),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["pixels"],
            output_names=["mid", "top"],
        )
        options = ort.SessionOptions()
        options.log_severity_level = 3
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _fingerprint(encoder: ImageEncoder, images: Sequence[Path]) -> str:
    import hashlib

    h = hashlib.sha256()
    for p in images:
        h.update(f"{p.name}:{p.stat().st_size}\n".encode())
    for t in encoder.state_dict().values():
        h.update(t.detach().float().numpy().tobytes()[:4096])
    return h.hexdigest()[:16]


def grid_from_trunk(
    encoder: ImageEncoder, top: np.ndarray, mid: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """v_I [B, cells, 1280] and v_mid [B, 4 * cells, 112] from cached trunk features (the encoder's head conv)."""
    v_I = encoder.head(torch.from_numpy(np.asarray(top, dtype=np.float32))).flatten(2).transpose(1, 2)
    v_mid = torch.from_numpy(np.asarray(mid, dtype=np.float32)).flatten(2).transpose(1, 2)
    return v_I, v_mid


IGNORE = 255  # a cell target that says nothing (the tag is in the picture, but no box says where)


def cell_targets(pictures: Sequence, vocabulary: Sequence[str]) -> np.ndarray:
    """[N, cells, tags] uint8: 1 where a box of the tag covers the cell, 0 where the tag is surely not, else IGNORE.

    Boxes are mapped through the same letterbox the encoder sees. A cell holds a thing when the box covers a
    quarter of the cell, or the cell holds the box's centre. Tags present without boxes (terrain, time of day,
    a studio's unboxed labels) are left to the picture-level loss.
    """
    from PIL import Image

    from npc_sdk.runtime.images import GRID, IMAGE_HEIGHT, IMAGE_WIDTH

    rows, cols = GRID[0] * 2, GRID[1] * 2  # the stride-16 cells the head scores
    index = {t: i for i, t in enumerate(vocabulary)}
    out = np.zeros((len(pictures), rows * cols, len(vocabulary)), dtype=np.uint8)
    for n, pic in enumerate(pictures):
        size = pic.record.get("size")
        if not size:
            with Image.open(pic.image) as im:
                size = im.size
        w, h = size
        scale = min(IMAGE_WIDTH / w, IMAGE_HEIGHT / h)
        ox, oy = (IMAGE_WIDTH - round(w * scale)) // 2, (IMAGE_HEIGHT - round(h * scale)) // 2
        boxed = {tag for tag, _ in pic.boxes}
        for tag in pic.tags:
            if tag in index and tag not in boxed:
                out[n, :, index[tag]] = IGNORE
        for tag, (x0, y0, x1, y1) in pic.boxes:
            if tag not in index:
                continue
            bx0, by0, bx1, by1 = ox + x0 * scale, oy + y0 * scale, ox + x1 * scale, oy + y1 * scale
            cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
            for r in range(rows):
                for c in range(cols):
                    ix = max(0.0, min(bx1, (c + 1) * 16) - max(bx0, c * 16))
                    iy = max(0.0, min(by1, (r + 1) * 16) - max(by0, r * 16))
                    holds_centre = c * 16 <= cx < (c + 1) * 16 and r * 16 <= cy < (r + 1) * 16
                    if ix * iy >= 0.25 * 16 * 16 or holds_centre:
                        out[n, r * cols + c, index[tag]] = 1
    return out


def labels_matrix(tag_lists: Sequence[Sequence[str]], vocabulary: Sequence[str]) -> np.ndarray:
    index = {t: i for i, t in enumerate(vocabulary)}
    y = np.zeros((len(tag_lists), len(vocabulary)), dtype=np.float32)
    for row, tags in enumerate(tag_lists):
        for t in tags:
            if t in index:
                y[row, index[t]] = 1.0
    return y


def train_head(
    fusion: CoAttentionFusion,
    encoder: ImageEncoder,
    trunk: tuple[np.ndarray, np.ndarray],
    labels: np.ndarray,
    cfg: HeadConfig,
    *,
    cells: np.ndarray | None = None,
    log: Callable[[str], None] = print,
) -> list[float]:
    """Train `fusion.tag_head` on cached trunk features; returns the loss of each step (Ctrl-C stops early).

    Loss: binary cross-entropy of the pooled picture scores against the labels, plus `cfg.cell_weight` x that of
    each cell's scores against `cells` (cell_targets) where boxes say which cells hold what.
    """
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    head = fusion.tag_head
    head.train()
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    positives = labels.sum(0)
    # rare tags count more, up to a cap: a tag in 2% of pictures would otherwise learn to say "never"
    pos_weight = torch.from_numpy(np.clip((len(labels) - positives) / np.maximum(positives, 1), 1.0, 8.0))
    y_all = torch.from_numpy(labels)
    losses: list[float] = []
    stop = {"now": False}
    previous = signal.signal(signal.SIGINT, lambda *_: stop.__setitem__("now", True))
    started = time.perf_counter()
    try:
        for step in range(cfg.steps):
            if stop["now"]:
                break
            lr = (
                cfg.lr
                * min(1.0, (step + 1) / 100)
                * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / cfg.steps)))
            )
            for group in opt.param_groups:
                group["lr"] = lr
            rows = sorted(rng.sample(range(len(labels)), min(cfg.batch, len(labels))))
            with torch.no_grad():
                v_I, v_mid = grid_from_trunk(encoder, trunk[1][rows], trunk[0][rows])
            scores = fusion.cell_scores(v_I, v_mid)  # [B, 4 * cells, tags]
            logits = pool_cells(scores)
            loss = F.binary_cross_entropy_with_logits(logits, y_all[rows], pos_weight=pos_weight)
            if cells is not None and cfg.cell_weight:
                target = torch.from_numpy(cells[rows].astype(np.float32))
                known = (target != IGNORE).float()
                per_cell = F.binary_cross_entropy_with_logits(scores, target.clamp(max=1.0), reduction="none")
                weight = known * (1 + (target == 1).float() * (pos_weight - 1))  # the same care for rare tags
                loss = loss + cfg.cell_weight * (per_cell * weight).sum() / weight.sum().clamp(min=1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(round(loss.item(), 4))
            if (step + 1) % 100 == 0 or step + 1 == cfg.steps:
                rate = (step + 1) / (time.perf_counter() - started)
                log(
                    f"  tag head {step + 1}/{cfg.steps}: loss {np.mean(losses[-100:]):.4f} ({rate:.1f} steps/s)"
                )
    finally:
        signal.signal(signal.SIGINT, previous)
        head.eval()
    return losses


@torch.inference_mode()
def head_probabilities(
    fusion: CoAttentionFusion, encoder: ImageEncoder, trunk: tuple[np.ndarray, np.ndarray], batch: int = 64
) -> np.ndarray:
    """[N, tags]: the trained head's probability per tag, as the runtime computes it."""
    mid, top = trunk
    out = []
    for i in range(0, len(top), batch):
        v_I, v_mid = grid_from_trunk(encoder, top[i : i + batch], mid[i : i + batch])
        out.append(torch.sigmoid(fusion.tag_logits(v_I, v_mid)).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(fusion.cfg.tag_words)), dtype=np.float32)


def calibrate(probs: np.ndarray, labels: np.ndarray, target_precision: float) -> np.ndarray:
    """Per-tag thresholds: the lowest reaching `target_precision` on these pictures, else the best-F1 one."""
    thresholds = np.full(probs.shape[1], 0.5, dtype=np.float32)
    for t in range(probs.shape[1]):
        p, y = probs[:, t], labels[:, t] > 0.5
        if not y.any():
            continue
        candidates = np.unique(np.concatenate([p[y], [0.5]]))
        best_f1, best = -1.0, 0.5
        reached = None
        for c in candidates:
            said = p >= c
            tp = float((said & y).sum())
            precision = tp / max(float(said.sum()), 1.0)
            recall = tp / float(y.sum())
            f1 = 2 * precision * recall / max(precision + recall, 1e-9)
            if f1 > best_f1:
                best_f1, best = f1, float(c)
            if reached is None and precision >= target_precision and tp > 0:
                reached = float(c)
        thresholds[t] = max(0.05, min(0.99, reached if reached is not None else best))
    return thresholds


def head_metrics(
    probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray, vocabulary: Sequence[str]
) -> dict:
    """Per-tag precision and recall at the thresholds, their macro means, and a confusion listing.

    The confusion listing says, for every tag, which tags were present in the pictures where it was said
    wrongly (what it was mistaken for) and what was said instead in the pictures where it was missed.
    """
    said = probs >= thresholds[None, :]
    truth = labels > 0.5
    per_tag = {}
    for t, name in enumerate(vocabulary):
        support = int(truth[:, t].sum())
        predicted = int(said[:, t].sum())
        tp = int((said[:, t] & truth[:, t]).sum())
        if support == 0 and predicted == 0:
            continue
        false_pos = np.nonzero(said[:, t] & ~truth[:, t])[0]
        missed = np.nonzero(~said[:, t] & truth[:, t])[0]
        mistaken_for: dict[str, int] = {}
        for row in false_pos:
            for other in np.nonzero(truth[row])[0]:
                mistaken_for[vocabulary[other]] = mistaken_for.get(vocabulary[other], 0) + 1
        said_instead: dict[str, int] = {}
        for row in missed:
            for other in np.nonzero(said[row] & ~truth[row])[0]:
                said_instead[vocabulary[other]] = said_instead.get(vocabulary[other], 0) + 1
        per_tag[name] = {
            "support": support,
            "predicted": predicted,
            "precision": round(tp / predicted, 4) if predicted else None,
            "recall": round(tp / support, 4) if support else None,
            "threshold": round(float(thresholds[t]), 4),
            "false_positives": len(false_pos),
            "misses": len(missed),
            "mistaken_for": dict(sorted(mistaken_for.items(), key=lambda kv: -kv[1])[:5]),
            "said_instead_when_missed": dict(sorted(said_instead.items(), key=lambda kv: -kv[1])[:5]),
        }
    scored = [v for v in per_tag.values() if v["support"] > 0]
    precisions = [v["precision"] if v["precision"] is not None else 0.0 for v in scored]
    recalls = [v["recall"] for v in scored]
    return {
        "pictures": int(len(labels)),
        "macro_precision": round(float(np.mean(precisions)), 4) if scored else None,
        "macro_recall": round(float(np.mean(recalls)), 4) if scored else None,
        "micro_precision": round(float((said & truth).sum() / max(said.sum(), 1)), 4),
        "micro_recall": round(float((said & truth).sum() / max(truth.sum(), 1)), 4),
        "exact_pictures": round(float((said == truth).all(axis=1).mean()), 4) if len(labels) else None,
        "per_tag": per_tag,
    }


def head_markdown(title: str, metrics: dict) -> str:
    lines = [
        f"### {title}",
        "",
        f"{metrics['pictures']} pictures; macro precision {metrics['macro_precision']}, macro recall "
        f"{metrics['macro_recall']} (micro {metrics['micro_precision']} / {metrics['micro_recall']}); "
        f"every tag right in {metrics['exact_pictures']} of the pictures.",
        "",
        "| tag | support | precision | recall | threshold | mistaken for (false positives) | said instead (misses) |",
        "|---|---|---|---|---|---|---|",
    ]

    def fmt(d: dict) -> str:
        return ", ".join(f"{k} {v}" for k, v in d.items()) or "-"

    for name, v in sorted(metrics["per_tag"].items()):
        p = "-" if v["precision"] is None else f"{v['precision']:.2f}"
        r = "-" if v["recall"] is None else f"{v['recall']:.2f}"
        lines.append(
            f"| {name} | {v['support']} | {p} | {r} | {v['threshold']:.2f} | {fmt(v['mistaken_for'])} | "
            f"{fmt(v['said_instead_when_missed'])} |"
        )
    return "\n".join(lines) + "\n"


def save_config(path: Path, cfg: HeadConfig) -> None:
    path.write_text(json.dumps(asdict(cfg), indent=2) + "\n")
