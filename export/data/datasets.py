"""Labelled picture datasets: the built-in Kenney scenes and a studio's own, in one documented format.

A dataset is a folder:

    dataset.json        optional: {"tags": {"slime": {"words": ["slime", "slimes", "ooze"], "kind": "thing"}, ...}}
                        the vocabulary (what the grounding head can say) and, per tag, the words that name it
                        (what counts as the NPC naming it, and what the scene-word bias pushes); without it the
                        vocabulary is every tag the labels use, named by itself and its plural
    images/             the pictures (PNG, JPEG, any size and aspect)
    train.jsonl         one picture per line: {"file": "0001.png", "tags": ["slime", "gem"],
                                               "boxes": [{"tag": "slime", "box": [x0, y0, x1, y1]}]}
    val.jsonl           optional: pictures for calibrating the per-tag thresholds (else every 10th of train)
    test.jsonl          optional: pictures `npc-sdk eval` measures the head on

`file` is relative to images/; `tags` lists what is visible in the picture; `boxes` (pixels, top-left origin)
are optional. This is what an engine can write from its scene graph (samples/godot/capture/capture_dataset.gd,
samples/unity/Runtime/Capture/NpcDatasetCapture.cs). The built-in scenes (`npc-sdk data scenes`) are written in the same
format, with the generator's own fields beside these.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npc_sdk.runtime.scene import plural

from ..model.vocabulary import TagInfo, builtin_vocabulary

SPLIT_NAMES = ("train", "val", "test", "heldout_family", "heldout_pairs")


class DatasetError(ValueError):
    """A dataset file is wrong; the message says file:line: field: what."""


@dataclass
class Picture:
    image: Path
    tags: list[str]
    boxes: list[tuple[str, tuple[int, int, int, int]]] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)  # the whole JSON line


@dataclass
class Dataset:
    folder: Path
    vocabulary: list[TagInfo]
    builtin: bool = False  # written by `npc-sdk data scenes`

    @property
    def tag_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.vocabulary)

    @classmethod
    def open(cls, folder: Path) -> Dataset:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{folder}: no dataset folder; run `npc-sdk data scenes --out {folder}` first"
            )
        meta = folder / "dataset.json"
        if meta.is_file():
            return cls(folder, _read_vocabulary(meta), builtin=bool(_load_json(meta).get("builtin", False)))
        splits = [folder / f"{s}.jsonl" for s in SPLIT_NAMES if (folder / f"{s}.jsonl").is_file()]
        if not splits:
            raise FileNotFoundError(
                f"{folder}: no train.jsonl; run `npc-sdk data scenes --out {folder}` first"
            )
        seen: list[str] = []
        for path in splits:
            for _, rec in jsonl_records(path):
                for t in rec.get("tags", []):
                    if isinstance(t, str) and t not in seen:
                        seen.append(t)
        return cls(folder, [TagInfo(t, (t, plural(t))) for t in sorted(seen)])

    def has(self, split: str) -> bool:
        return (self.folder / f"{split}.jsonl").is_file()

    def split(self, name: str) -> list[Picture]:
        """The pictures of one split, every line checked (file:line: field: message on the first bad one)."""
        path = self.folder / f"{name}.jsonl"
        if not path.is_file():
            if name == "val" and self.has("train"):
                return self.split("train")[::10]
            raise FileNotFoundError(f"{path}: no {name} pictures in this dataset")
        known = set(self.tag_names)
        out = []
        for line_no, rec in jsonl_records(path):

            def bad(fld: str, why: str, line_no: int = line_no) -> DatasetError:
                return DatasetError(f"{path}:{line_no}: {fld}: {why}")

            file = rec.get("file")
            if not isinstance(file, str) or not file:
                raise bad("file", "needs the picture's file name (relative to images/)")
            image = (self.folder / "images" / file).resolve()
            if not image.is_relative_to((self.folder / "images").resolve()):
                raise bad("file", f"{file!r} points outside images/")
            if not image.is_file():
                raise bad("file", f"no picture at {image}")
            tags = rec.get("tags")
            if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
                raise bad("tags", "must be a list of tag names")
            unknown = sorted(set(tags) - known)
            if unknown:
                raise bad("tags", f"{unknown[0]!r} is not in the vocabulary ({self.folder / 'dataset.json'})")
            boxes = []
            for i, b in enumerate(rec.get("boxes", []) or []):
                box = b.get("box") if isinstance(b, dict) else None
                if (
                    not isinstance(b, dict)
                    or b.get("tag") not in known
                    or not isinstance(box, list)
                    or len(box) != 4
                    or not all(isinstance(v, (int, float)) for v in box)
                    or box[2] <= box[0]
                    or box[3] <= box[1]
                ):
                    raise bad(
                        f"boxes[{i}]",
                        'must be {"tag": a known tag, "box": [x0, y0, x1, y1]} with x1>x0, y1>y0',
                    )
                boxes.append((b["tag"], tuple(int(v) for v in box)))
            out.append(Picture(image, list(tags), boxes, rec))
        return out


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: must hold a JSON object")
    return data


def _read_vocabulary(path: Path) -> list[TagInfo]:
    data = _load_json(path)
    tags = data.get("tags")
    if data.get("builtin") and tags is None:
        return builtin_vocabulary()
    if not isinstance(tags, dict) or not tags:
        raise DatasetError(f'{path}: tags: must be an object of tag name -> {{"words": [...], "kind": ...}}')
    out = []
    for name, spec in tags.items():
        spec = spec or {}
        words = spec.get("words", [name, plural(name)]) if isinstance(spec, dict) else None
        kind = spec.get("kind", "thing") if isinstance(spec, dict) else None
        if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
            raise DatasetError(f"{path}: tags.{name}.words: must be a list of words")
        if kind not in ("thing", "terrain", "time"):
            raise DatasetError(f"{path}: tags.{name}.kind: must be thing, terrain or time")
        out.append(TagInfo(name, tuple(words), kind))
    return out


def jsonl_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) of every non-blank line of a JSONL file; DatasetError (a ValueError) naming the file
    and line when one is not a JSON object."""
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{line_no}: not a JSON object ({exc.msg})") from exc
        if not isinstance(rec, dict):
            raise DatasetError(f"{path}:{line_no}: not a JSON object")
        yield line_no, rec


def write_builtin_meta(folder: Path) -> None:
    """dataset.json for the built-in scenes: the Kenney vocabulary with its lexicon."""
    tags = {t.name: {"words": list(t.words), "kind": t.kind} for t in builtin_vocabulary()}
    (folder / "dataset.json").write_text(json.dumps({"builtin": True, "tags": tags}, indent=1) + "\n")
