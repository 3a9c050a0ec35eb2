"""Fusion + LoRA on the authored corpus: every item is rendered as the runtime renders that turn.

A training row is the runtime's prompt for the item's turn, after the persona block (whose KV state is shared by a
batch of one persona):

  for each earlier turn:  {user_start} [K prefix vectors of that line, no picture] {lore}{line}{reply_start}{reply}{end}
  this turn:              {user_start} [K prefix vectors of line + picture] {lore}{action note}{scene note}{line}
                          {generation} -> target: the written reply + end of turn

Scene items with `in_view` see the picture rendered for them (corpus_scenes.py) and the note of its true tags, the
way the runtime lists the head's; game entities join the note as the runtime merges them. A request line gets the
note of the persona's action it asks for, as the action decider would add it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from npc_sdk.personas.persona import Persona
from npc_sdk.personas.prompt import Turn, persona_block, turn_context
from npc_sdk.runtime.actions import action_note
from npc_sdk.runtime.scene import SceneEntity, merge

from ..data.corpus import CorpusItem
from ..data.corpus_scenes import open_picture, render_corpus_scenes
from ..model.reference import NpcModel
from .train import TrainConfig, _word_starts, optimise, persona_cache, target_losses

Segment = list[int] | int  # token ids, or the index of a (line, picture) whose prefix vectors go there


@dataclass
class CorpusExample:
    persona_id: str
    segments: list[Segment]
    prefixes: list[tuple[str, str | None]]  # (line, item id of its picture or None) per prefix index
    target: list[int]  # reply + end of turn
    absent: list[int] = field(default_factory=list)  # first tokens of words of things not in view


class CorpusFeatures:
    """Frozen encoder outputs: v_I per picture, v_T per line, v_R and the persona block per persona.

    The encoders are frozen, so with `cache` (a file in the run folder) what was encoded once is read back on the
    next start: a resumed run on a grown corpus encodes only the new pictures and lines (all of them took ~20 min
    on two cores)."""

    def __init__(
        self,
        model: NpcModel,
        personas: dict[str, Persona],
        lines: set[str],
        pictures: dict[str, Path],
        log: Callable[[str], None] = print,
        cache: Path | None = None,
    ) -> None:
        stored = _read_feature_cache(cache)
        images: dict[str, tuple[torch.Tensor, torch.Tensor]] = stored.get("images", {})
        texts: dict[str, tuple[torch.Tensor, torch.Tensor]] = stored.get("texts", {})
        keys = {key: _picture_key(path) for key, path in pictures.items()}
        new_pictures = [k for k in pictures if keys[k] not in images]
        new_lines = [line for line in lines if line not in texts]
        log(
            f"  encoding {len(new_pictures)} pictures, {len(new_lines)} lines, {len(personas)} personas "
            f"({len(pictures) - len(new_pictures)} pictures and {len(lines) - len(new_lines)} lines cached)"
        )
        for n, key in enumerate(new_pictures, 1):
            v_I, v_mid = model.encode_image(open_picture(pictures[key]))
            images[keys[key]] = (v_I[0].clone(), v_mid[0].clone())
            if n % 250 == 0:
                log(f"    pictures {n}/{len(new_pictures)}")
        for line in new_lines:
            texts[line] = tuple(t.clone() for t in model.encode_text(line))
        if cache is not None and (new_pictures or new_lines):
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"images": images, "texts": texts}, cache.with_suffix(".tmp"))
            cache.with_suffix(".tmp").replace(cache)
        self.v_I = {key: images[keys[key]] for key in pictures}
        cfg = model.fusion.cfg
        self.no_image = (
            torch.zeros(cfg.image_cells, cfg.image_dim),
            torch.zeros(4 * cfg.image_cells, cfg.mid_dim),
        )
        self.v_T = {line: texts[line] for line in lines}
        self.v_R = {pid: model.encode_role(p).clone() for pid, p in personas.items()}
        fmt = model.decoder.chat_format
        self.persona_ids = {
            pid: persona_block(model.decoder.tokenizer, p, fmt=fmt) for pid, p in personas.items()
        }

    def persona_cache(self, model: NpcModel, persona_id: str, batch: int):
        # computed with the adapters as they are but without their gradient: the persona block is long and the
        # reply tokens after it carry what the adapters must learn (about half the step time saved)
        return persona_cache(model, self.persona_ids[persona_id], batch, grad=False)


def _picture_key(path: Path) -> str:
    # a picture re-rendered for a changed item is a new file: its features are encoded again
    stat = path.stat()
    return f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"


def _read_feature_cache(cache: Path | None) -> dict:
    if cache is None or not cache.is_file():
        return {}
    try:
        return torch.load(cache, weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:  # a torn or foreign file: encode everything again
        print(f"  feature cache {cache} unreadable ({err}); encoding again")
        return {}


def _action_for(model: NpcModel, persona: Persona, line: str):
    """The declared action a request line asks for: the nearest by sentence vector to its examples."""
    if not persona.actions:
        return None
    texts = [line] + [f"{a.description}. " + " ".join(a.examples) for a in persona.actions]
    vectors = torch.cat([model.encode_sentence(t) for t in texts])
    vectors = F.normalize(vectors, dim=-1)
    return persona.actions[int((vectors[1:] @ vectors[0]).argmax())]


def build_corpus_examples(
    model: NpcModel,
    items: Sequence[CorpusItem],
    personas: dict[str, Persona],
    pictures: dict[str, tuple[Path, list[str]]],
    max_reply_tokens: int,
) -> list[CorpusExample]:
    tok, fmt = model.decoder.tokenizer, model.decoder.chat_format
    starts = {t.name: _word_starts(tok, t.words) for t in model.vocabulary if t.kind != "time"}

    def enc(s: str) -> list[int]:
        return tok.encode(s, add_special_tokens=False).ids

    out = []
    for item in items:
        persona = personas[item.persona]
        segments: list[Segment] = []
        prefixes: list[tuple[str, str | None]] = []
        turns: list[Turn] = []
        for user, reply in item.history:
            context = turn_context(tok, persona, turns, user)
            segments += [enc(fmt.user_start), len(prefixes)]
            segments.append(enc(f"{context}{user}{fmt.reply_start}{reply}{fmt.assistant_end}"))
            prefixes.append((user, None))
            turns.append(Turn(user, reply, None, context))
        picture = pictures.get(item.id)
        tags = picture[1] if picture else list(item.in_view)
        entities = [SceneEntity(t) for t in tags] + [SceneEntity(e.tag, e.name, e.x) for e in item.entities]
        note = merge(None, model.tags, entities).note() if entities else ""
        action = _action_for(model, persona, item.line) if item.kind == "request" else None
        context = (
            turn_context(tok, persona, turns, item.line) + (action_note(action) if action else "") + note
        )
        segments += [enc(fmt.user_start), len(prefixes), enc(f"{context}{item.line}{fmt.generation}")]
        prefixes.append((item.line, item.id if picture else None))
        absent = sorted({i for name, ids in starts.items() if name not in tags for i in ids}) if tags else []
        target = enc(item.reply)[:max_reply_tokens] + [model.decoder.eos_id]
        out.append(CorpusExample(item.persona, segments, prefixes, target, absent))
    return out


def corpus_loss(
    model: NpcModel, feats: CorpusFeatures, batch: Sequence[CorpusExample], live_persona: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy of the reply tokens, unlikelihood of things not in view), one persona per batch."""
    embeds, cache, spans = assemble_rows(model, feats, batch)
    ones = [[1.0] * len(e.target) for e in batch]
    return target_losses(model, embeds, cache, spans, batch, ones, unlikelihood=True)


def assemble_rows(
    model: NpcModel, feats: CorpusFeatures, batch: Sequence[CorpusExample]
) -> tuple[torch.Tensor, object, list[tuple[int, int]]]:
    """A batch of one persona as the decoder reads it: the rows after the persona block [B, T, hidden], that
    block's KV state, and per row where its target starts and how many tokens it has."""
    fusion, table = model.fusion, model.decoder.lm.get_input_embeddings()
    wanted = [p for e in batch for p in e.prefixes]
    images = [feats.v_I[key] if key else feats.no_image for _, key in wanted]
    v_I = torch.stack([i[0] for i in images])
    v_mid = torch.stack([i[1] for i in images])
    has_image = torch.tensor([1.0 if key else 0.0 for _, key in wanted])
    texts = [feats.v_T[line] for line, _ in wanted]
    width = max(t[0].shape[1] for t in texts)
    v_T = torch.cat([F.pad(t[0], (0, 0, 0, width - t[0].shape[1])) for t in texts])
    mask = torch.cat([F.pad(t[1], (0, width - t[1].shape[1])) for t in texts])
    v_R = feats.v_R[batch[0].persona_id].expand(len(wanted), -1)
    prefix, _ = fusion(v_I, v_mid, has_image, v_T, mask, v_R)  # [N, K, H]

    rows, spans, first = [], [], 0
    for e in batch:
        parts = []
        for seg in e.segments:
            if isinstance(seg, int):
                parts.append(prefix[first + seg])
            else:
                with torch.no_grad():
                    parts.append(table(torch.tensor(seg)))
        first += len(e.prefixes)
        start = sum(p.shape[0] for p in parts)
        with torch.no_grad():
            parts.append(table(torch.tensor(e.target)))
        rows.append(torch.cat(parts))
        spans.append((start, len(e.target)))
    length = max(r.shape[0] for r in rows)
    embeds = torch.stack([F.pad(r, (0, 0, 0, length - r.shape[0])) for r in rows])
    cache = feats.persona_cache(model, batch[0].persona_id, len(batch))
    return embeds, cache, spans


def train_corpus(
    model: NpcModel,
    items: Sequence[CorpusItem],
    personas: dict[str, Persona],
    out: Path,
    cfg: TrainConfig,
    *,
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Fusion + LoRA on the corpus's training items (held-out personas never reach here)."""
    items = [i for i in items if i.split == "train"]
    if resume and _checkpoint_step(out) >= cfg.steps:
        # `--resume --steps N` with N steps already done ends the run there (the adapters are written) without
        # encoding the corpus again: how a run is stopped early on purpose
        return optimise(model, [], lambda batch, live: (None, None), out, cfg, resume=True, log=log)
    pictures, used, feats = corpus_features(model, items, personas, out, log)
    log(f"training on {len(items)} written replies of {len(used)} personas, {len(pictures)} with a picture")
    examples = build_corpus_examples(model, items, used, pictures, cfg.max_reply_tokens)
    summary = optimise(
        model,
        examples,
        lambda batch, live: corpus_loss(model, feats, batch, live),
        out,
        cfg,
        resume=resume,
        log=log,
    )
    summary["personas"] = sorted(used)
    summary["pictures"] = len(pictures)
    return summary


def corpus_features(
    model: NpcModel,
    items: Sequence[CorpusItem],
    personas: dict[str, Persona],
    out: Path,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, tuple[Path, list[str]]], dict[str, Persona], CorpusFeatures]:
    """The items' pictures (rendered once), their personas, and the frozen encoders' features (cached in `out`)."""
    pictures = render_corpus_scenes(items, log=log)
    used = {i.persona: personas[i.persona] for i in items}
    lines = {i.line for i in items} | {u for i in items for u, _ in i.history}
    feats = CorpusFeatures(
        model, used, lines, {k: v[0] for k, v in pictures.items()}, log=log, cache=out / "features.pt"
    )
    return pictures, used, feats


def _checkpoint_step(out: Path) -> int:
    ckpt = out / "checkpoint.pt"
    return int(torch.load(ckpt, weights_only=False)["step"]) if ckpt.is_file() else 0


def mean_reply_tokens(examples: Sequence[CorpusExample]) -> float:
    return float(np.mean([len(e.target) for e in examples])) if examples else 0.0
