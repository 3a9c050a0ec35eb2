"""Training screenshots: game scenes composed from Kenney's CC0 sprites in the arcade wheel, with exact labels.

The built-in scenes' splits, generated (compose.py, render.py) and written to disk as a dataset.

Splits:
  train            training families, never a reserved (terrain, category) pair;
  val              the same families and rule, another random stream: for calibrating per-tag thresholds;
  heldout_family   the held-out families (`HELDOUT_FAMILIES`), never seen in training: the main evaluation;
  heldout_pairs    training families, each scene with at least one reserved pair.
A scene is recomposed from its seed (`compose`), so the labels file stays small and re-rendering is exact.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from npc_sdk.runtime.scene import plural

from .compose import ASPECTS, STYLE_WEIGHTS, STYLES, compose, is_reserved_pair
from .render import PlacedObject, render
from .sprites import AspectTable, Sprites, arcade_wheel

HELDOUT_FAMILIES = (("cave", "21:9"), ("topdown", "4:3"))
SPLITS = ("train", "val", "heldout_family", "heldout_pairs")


@dataclass
class Scene:
    file: str
    split: str
    family: str  # layout style: side, cave, topdown or closeup
    aspect: str  # 4:3, 16:10, 16:9 or 21:9
    seed: int  # the scene is recomposed from this (see `compose`)
    size: tuple[int, int] = (0, 0)  # width, height in pixels
    terrain: str = ""  # the ground's terrain when enough of it is visible, else ""
    liquid: str = ""  # lava or water when enough of it is visible, else ""
    time: str = ""  # day, dusk or night where the picture shows it, else ""
    hud: bool = False
    objects: list[PlacedObject] = field(default_factory=list)  # the visible things only

    @property
    def categories(self) -> list[str]:
        """Everything the picture holds that the lexicon names: terrain, liquid and object categories."""
        names = {o.category for o in self.objects}
        names |= {n for n in (self.terrain, self.liquid) if n}
        return sorted(names)

    @property
    def object_categories(self) -> list[str]:
        return sorted({o.category for o in self.objects})

    @property
    def tags(self) -> list[str]:
        """What the grounding head should say: the categories, and the time of day where it shows."""
        return self.categories + ([self.time] if self.time else [])

    def to_json(self) -> dict:
        return {**asdict(self), "tags": self.tags}

    @classmethod
    def from_json(cls, d: dict) -> Scene:
        objects = [
            PlacedObject(o["category"], o["sprite"], tuple(o["box"]), o.get("visible", 1.0))
            for o in d["objects"]
        ]
        return cls(
            d["file"],
            d["split"],
            d.get("family", "side"),
            d.get("aspect", "1:1"),
            d.get("seed", 0),
            tuple(d.get("size", (0, 0))),
            d.get("terrain", ""),
            d.get("liquid", ""),
            d.get("time", ""),
            d.get("hud", False),
            objects,
        )


def families(split: str) -> list[tuple[str, str]]:
    every = [(s, a) for s in STYLES for a in ASPECTS]
    if split == "heldout_family":
        return list(HELDOUT_FAMILIES)
    return [f for f in every if f not in HELDOUT_FAMILIES]


def has_reserved_pair(scene: Scene) -> bool:
    grounds = [g for g in (scene.terrain, scene.liquid) if g]
    return any(is_reserved_pair(g, c) for g in grounds for c in scene.object_categories)


def generate(n: int, split: str, seed: int, sprites: Sprites) -> Iterator[tuple[Scene, Image.Image]]:
    """`n` rendered scenes of one split with their labels, the same for the same seed."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = random.Random(f"npc-scenes-v2:{seed}:{split}")
    fams = families(split)
    weights = [STYLE_WEIGHTS[s] for s, _ in fams]
    aspect_of = AspectTable(sprites)
    made = tries = 0
    while made < n:
        tries += 1
        if tries > 50 * n + 100:
            raise RuntimeError(f"could not compose {n} {split} scenes")
        family, aspect = rng.choices(fams, weights)[0]
        scene_seed = rng.randrange(1 << 31)
        plan = compose(family, aspect, scene_seed, aspect_of=aspect_of, avoid_pairs=split in ("train", "val"))
        image, labels = render(plan, sprites)
        # most screenshots arrive as JPEG at some quality; a fifth stay PNG
        ext = ".png" if rng.random() < 0.2 else ".jpg"
        scene = Scene(
            f"{split}_{made:05d}{ext}",
            split,
            family,
            aspect,
            scene_seed,
            plan.size,
            labels["terrain"],
            labels["liquid"],
            labels["time"],
            labels["hud"],
            labels["objects"],
        )
        if not scene.objects:
            continue
        if split == "heldout_pairs" and not has_reserved_pair(scene):
            continue
        if split in ("train", "val") and has_reserved_pair(scene):
            continue  # a plan without reserved pairs can still end up with one after occlusion: never
        made += 1
        yield scene, image


def rerender(scene: Scene, sprites: Sprites) -> Image.Image:
    """The picture of a labelled scene, from its family, aspect and seed."""
    avoid = scene.split in ("train", "val")
    plan = compose(scene.family, scene.aspect, scene.seed, aspect_of=AspectTable(sprites), avoid_pairs=avoid)
    return render(plan, sprites)[0]


# ---- words ---------------------------------------------------------------------------------------------------
def describe(scene: Scene) -> str:
    """The scene in words, for the teacher (it reads text; the student sees pixels)."""
    counts: dict[str, int] = {}
    for obj in scene.objects:
        counts[obj.category] = counts.get(obj.category, 0) + 1
    things = [f"{'a' if n == 1 else n} {name if n == 1 else plural(name)}" for name, n in counts.items()]
    parts = []
    if scene.terrain:
        parts.append(f"{scene.terrain} ground" + (f" with {scene.liquid}" if scene.liquid else ""))
    elif scene.liquid:
        parts.append(scene.liquid)
    if scene.time:
        parts.append({"day": "in daylight", "dusk": "at dusk", "night": "at night"}[scene.time])
    listing = ", ".join(things[:-1]) + (" and " if len(things) > 1 else "") + things[-1]
    return (", ".join(parts) + "; " if parts else "") + f"you can see {listing}"


# ---- files ---------------------------------------------------------------------------------------------------
def write_split(out: Path, n: int, split: str, seed: int, log: Callable[[str], None] = print) -> Path:
    """Render `n` scenes of `split` into out/images and write their labels to out/<split>.jsonl.

    The labels file is the dataset format of docs/training.md (file, tags, boxes), with the generator's own
    fields beside them. Resumable: pictures already written with their labels are kept.
    """
    sprites = Sprites(arcade_wheel(log))
    (out / "images").mkdir(parents=True, exist_ok=True)
    labels = out / f"{split}.jsonl"
    partial = labels.with_suffix(".jsonl.partial")
    done = partial.read_text().splitlines() if partial.is_file() else []
    with partial.open("a") as f:
        for i, (scene, image) in enumerate(generate(n, split, seed, sprites)):
            if i < len(done):
                continue
            if scene.file.endswith(".jpg"):
                image.save(out / "images" / scene.file, quality=75 + scene.seed % 21)
            else:
                image.save(out / "images" / scene.file, compress_level=3)
            f.write(json.dumps(scene_record(scene)) + "\n")
            f.flush()
            if (i + 1) % 200 == 0 or i + 1 == n:
                log(f"  {split}: {i + 1}/{n} scenes")
    partial.replace(labels)
    return labels


def scene_record(scene: Scene) -> dict:
    """One line of a labels file: the studio dataset fields (file, tags, boxes) and the generator's own."""
    return {
        "file": scene.file,
        "tags": scene.tags,
        "boxes": [{"tag": o.category, "box": list(o.box)} for o in scene.objects],
        **{k: v for k, v in scene.to_json().items() if k not in ("file", "tags")},
    }


def read_split(folder: Path, split: str) -> list[Scene]:
    path = folder / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {split} scenes; run `npc-sdk data scenes --out {folder}` first")
    return [Scene.from_json(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
