"""Pictures for the corpus's scene lines: for each written `in_view`, a rendered scene that holds those things.

A writer says what is in view and answers about it; the student must learn to say that from pixels, so each scene
item gets a picture composed with its things (scenes.WANTED), its terrain and its time of day, checked against the
rendered labels (a thing hidden by the HUD or another sprite does not count). Pictures are cached by item id under
the cache folder; the same corpus gives the same pictures.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

from npc_sdk.cache import cache_dir

from ..model.vocabulary import OBJECTS, TERRAINS, TIMES
from .compose import WANTED, compose
from .corpus import CorpusItem
from .render import render
from .splits import families
from .sprites import AspectTable, Sprites, arcade_wheel

THINGS = frozenset(c.name for c in OBJECTS)
MAX_TRIES = 400


def scene_folder() -> Path:
    return cache_dir() / "datasets" / "corpus-scenes"


def _fits(plan, terrains: set[str], time: str) -> bool:
    grounds = {g for g in (plan.terrain, plan.liquid) if g}
    if not terrains <= grounds:
        return False
    return not time or plan.time == time


def picture_for(item: CorpusItem, sprites: Sprites, aspect_of: AspectTable, split: str = "train"):
    """(image, tags) of a scene holding the item's things, terrain and time; None when none could be composed."""
    things = tuple(t for t in item.in_view if t in THINGS)
    terrains = {t for t in item.in_view if t in TERRAINS}
    times = [t for t in item.in_view if t in TIMES]
    rng = random.Random(f"corpus-scene:{item.id}")
    fams = [f for f in families(split) if not (times and f[0] == "cave")]
    token = WANTED.set(things)
    try:
        for _ in range(MAX_TRIES):
            family, aspect = rng.choice(fams)
            plan = compose(family, aspect, rng.randrange(1 << 31), aspect_of=aspect_of, avoid_pairs=False)
            if not _fits(plan, terrains, times[0] if times else ""):
                continue
            image, labels = render(plan, sprites)
            seen = {o.category for o in labels["objects"]}
            grounds = [g for g in (labels["terrain"], labels["liquid"]) if g]
            if set(things) <= seen and terrains <= set(grounds):
                tags = sorted(seen) + grounds
                return image, tags + ([labels["time"]] if labels["time"] else [])
    finally:
        WANTED.reset(token)
    return None


def render_corpus_scenes(
    items: Sequence[CorpusItem], folder: Path | None = None, log: Callable[[str], None] = print
) -> dict[str, tuple[Path, list[str]]]:
    """item id -> (picture, the picture's true tags) for every scene item with in_view tags; cached."""
    folder = folder or scene_folder()
    (folder / "images").mkdir(parents=True, exist_ok=True)
    index_path = folder / "index.json"
    index: dict[str, list] = json.loads(index_path.read_text()) if index_path.is_file() else {}
    wanted = [i for i in items if i.in_view and i.id not in index]
    if wanted:
        sprites = Sprites(arcade_wheel(log))
        aspect_of = AspectTable(sprites)
        for n, item in enumerate(wanted, 1):
            made = picture_for(
                item, sprites, aspect_of, "heldout_family" if item.split == "heldout" else "train"
            )
            if made is None:
                index[item.id] = []
            else:
                image, tags = made
                path = folder / "images" / f"{item.id}.jpg"
                image.convert("RGB").save(path, quality=90)
                index[item.id] = [path.name, tags]
            if n % 100 == 0 or n == len(wanted):
                log(f"  corpus scenes: {n}/{len(wanted)}")
                index_path.write_text(json.dumps(index))
    asked = {i.id for i in items}
    return {k: (folder / "images" / v[0], v[1]) for k, v in index.items() if v and k in asked}


def open_picture(path: Path) -> Image.Image:
    return Image.open(path).convert("RGB")
