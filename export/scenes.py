"""Training screenshots: 2D game scenes composed from Kenney's CC0 sprites in the arcade wheel, with labels.

Each scene is 448x448 (7x7 tiles of 64 px, so the runtime's 224 px input keeps the whole picture): sky by time of
day, two rows of ground in one terrain, optional lava or water pools, 2-4 object categories standing on the
ground or floating. Labels list every object with its sprite and box.

The held-out split never repeats what training saw: a fixed quarter of (terrain, object category) pairs and a
fifth of layouts (the pattern of occupied tile positions) are reserved for it. Training scenes contain neither;
held-out scenes contain at least one reserved pair and a reserved layout. Everything is drawn from one seeded
random stream per split, so the same seed gives the same pictures and labels.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from npc_sdk.cache import cache_dir

from .scene_lexicon import BY_NAME, OBJECTS

ARCADE_WHEEL = "arcade==3.3.3"
ARCADE_SHA256 = "25f4e0e5b8bcbe7a7d087c0a23b19e9f423b0c70ec00945c8712c9a3e541ebd2"
SPRITE_ROOT = "arcade/resources/assets/images/"
TILE = 64
GRID = 7  # tiles per side
SIZE = TILE * GRID
GROUND_ROW = 5  # rows 5 and 6 are ground; standing objects sit on row 4
GROUNDS = ("grass", "snow", "sand", "stone")
LIQUIDS = ("", "lava", "water")
SKIES = {"day": (135, 196, 250), "dusk": (244, 150, 104), "night": (22, 26, 64)}
SHADE = {"day": (1.0, 1.0, 1.0), "dusk": (1.0, 0.85, 0.75), "night": (0.5, 0.55, 0.8)}  # light on the scene
SPLITS = ("train", "heldout")


@dataclass
class PlacedObject:
    category: str
    sprite: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, top-left origin


@dataclass
class Scene:
    file: str
    split: str
    terrain: str  # ground: grass, snow, sand or stone
    liquid: str  # "", lava or water: pools cut into the ground
    time: str  # day, dusk or night
    objects: list[PlacedObject] = field(default_factory=list)
    pools: list[int] = field(default_factory=list)  # columns of the pools

    @property
    def categories(self) -> list[str]:
        """Everything the picture holds: terrain, liquid and object categories."""
        names = {self.terrain, *(o.category for o in self.objects)}
        if self.liquid:
            names.add(self.liquid)
        return sorted(names)

    @property
    def object_categories(self) -> list[str]:
        return sorted({o.category for o in self.objects})

    def layout(self) -> tuple[tuple[int, int], ...]:
        """Occupied tile positions, whatever stands there."""
        return tuple(sorted({(o.box[0] // TILE, o.box[3] // TILE) for o in self.objects}))

    def to_json(self) -> dict:
        return {**asdict(self), "categories": self.categories}

    @classmethod
    def from_json(cls, d: dict) -> Scene:
        objects = [PlacedObject(o["category"], o["sprite"], tuple(o["box"])) for o in d["objects"]]
        return cls(d["file"], d["split"], d["terrain"], d["liquid"], d["time"], objects, list(d["pools"]))


def _bucket(key: str, modulo: int) -> int:
    return zlib.crc32(key.encode()) % modulo


def is_reserved_pair(terrain: str, category: str) -> bool:
    """(terrain, category) combinations that only held-out scenes show."""
    return _bucket(f"pair:{terrain}:{category}", 4) == 0


def is_reserved_layout(layout: tuple[tuple[int, int], ...]) -> bool:
    return _bucket(f"layout:{layout}", 5) == 0


def belongs_to(scene: Scene) -> str:
    """Which split a composed scene may go to: train, heldout, or neither ("")."""
    grounds = [scene.terrain] + ([scene.liquid] if scene.liquid else [])
    reserved_pair = any(is_reserved_pair(g, c) for g in grounds for c in scene.object_categories)
    reserved_layout = is_reserved_layout(scene.layout())
    if not reserved_pair and not reserved_layout:
        return "train"
    if reserved_pair and reserved_layout:
        return "heldout"
    return ""


# ---- sprites ---------------------------------------------------------------------------------------------------
def arcade_wheel(log: Callable[[str], None] = print) -> Path:
    """The arcade wheel in the cache (pip download, sha256-checked; never installed)."""
    folder = cache_dir() / "datasets" / "wheels"
    wheel = folder / "arcade-3.3.3-py3-none-any.whl"
    if wheel.is_file() and hashlib.sha256(wheel.read_bytes()).hexdigest() == ARCADE_SHA256:
        return wheel
    folder.mkdir(parents=True, exist_ok=True)
    log(f"downloading {ARCADE_WHEEL} (Kenney CC0 sprites) into {folder}")
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--disable-pip-version-check"]
        subprocess.run([*cmd, "-d", tmp, ARCADE_WHEEL], check=True)
        got = next(Path(tmp).glob("arcade-*.whl"))
        digest = hashlib.sha256(got.read_bytes()).hexdigest()
        if digest != ARCADE_SHA256:
            raise RuntimeError(f"{got.name}: sha256 {digest} is not the pinned {ARCADE_SHA256}")
        got.replace(wheel)
    return wheel


class Sprites:
    """Sprite PNGs read straight from the wheel, cached at the sizes asked for."""

    def __init__(self, wheel: Path) -> None:
        self.zip = zipfile.ZipFile(wheel)
        self._cache: dict[tuple[str, int], Image.Image] = {}

    def get(self, name: str, size: int = TILE) -> Image.Image:
        key = (name, size)
        if key not in self._cache:
            img = Image.open(io.BytesIO(self.zip.read(SPRITE_ROOT + name))).convert("RGBA")
            self._cache[key] = img.resize((size, size), Image.Resampling.NEAREST)
        return self._cache[key]


# ---- composing -------------------------------------------------------------------------------------------------
def compose(rng: random.Random, file: str, split: str) -> Scene:
    """A random scene description (no pixels yet)."""
    scene = Scene(file, split, rng.choice(GROUNDS), rng.choice(LIQUIDS), rng.choice(list(SKIES)))
    columns = list(range(GRID))
    if scene.liquid:
        start = rng.randrange(GRID - 1)
        scene.pools = [start, start + 1] if rng.random() < 0.5 else [start]
    standing_cols = [c for c in columns if c not in scene.pools]
    rng.shuffle(standing_cols)
    air_cells = [(c, r) for c in columns for r in (1, 2, 3)]
    rng.shuffle(air_cells)
    for cat in rng.sample(OBJECTS, rng.randint(2, 4)):
        copies = rng.choice((1, 1, 2, 3)) if cat.name == "coin" else rng.choice((1, 1, 2))
        for _ in range(copies):
            sprite = rng.choice(cat.sprites)
            size = rng.choice((48, 56, 64))
            if cat.floats:
                if not air_cells:
                    break
                col, row = air_cells.pop()
            else:
                if not standing_cols:
                    break
                col, row = standing_cols.pop(), GROUND_ROW - 1
            dx = rng.randint(0, TILE - size)
            x0 = col * TILE + dx
            y1 = (row + 1) * TILE if not cat.floats else row * TILE + TILE - rng.randint(0, TILE - size)
            top = y1 - size - (TILE if cat.name == "door" else 0)  # doors are two tiles high
            scene.objects.append(PlacedObject(cat.name, sprite, (x0, top, x0 + size, y1)))
    return scene


def generate(n: int, split: str, seed: int) -> Iterator[Scene]:
    """`n` scenes of one split, the same for the same seed."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = random.Random(f"npc-scenes:{seed}:{split}")
    made = 0
    while made < n:
        scene = compose(rng, f"{split}_{made:05d}.png", split)
        if len({o.category for o in scene.objects}) >= 2 and belongs_to(scene) == split:
            made += 1
            yield scene


def render(scene: Scene, sprites: Sprites) -> Image.Image:
    sky = SKIES[scene.time]
    img = Image.new("RGBA", (SIZE, SIZE), sky + (255,))
    if scene.time == "night":  # a few stars, placed by the scene's own name so re-rendering is identical
        star_rng = random.Random(scene.file)
        for _ in range(40):
            x, y = star_rng.randrange(SIZE), star_rng.randrange(GROUND_ROW * TILE - TILE)
            img.putpixel((x, y), (235, 235, 200, 255))
    top, fill = BY_NAME[scene.terrain].sprites
    for col in range(GRID):
        if col in scene.pools:
            img.alpha_composite(
                sprites.get(BY_NAME[scene.liquid].sprites[0]), (col * TILE, GROUND_ROW * TILE)
            )
        else:
            img.alpha_composite(sprites.get(top), (col * TILE, GROUND_ROW * TILE))
        img.alpha_composite(sprites.get(fill), (col * TILE, (GROUND_ROW + 1) * TILE))
    for obj in scene.objects:
        x0, y0, x1, y1 = obj.box
        size = x1 - x0
        if obj.category == "door":
            img.alpha_composite(sprites.get("tiles/doorClosed_top.png", size), (x0, y0))
            img.alpha_composite(sprites.get(obj.sprite, size), (x0, y0 + size))
        else:
            img.alpha_composite(sprites.get(obj.sprite, size), (x0, y0))
    rgb = img.convert("RGB")
    if scene.time != "day":
        bands = [
            band.point(lambda v, k=k: int(v * k))
            for band, k in zip(rgb.split(), SHADE[scene.time], strict=True)
        ]
        rgb = Image.merge("RGB", bands)
    return rgb


def describe(scene: Scene) -> str:
    """The scene in words, for the teacher (it reads text; the student sees pixels)."""
    counts: dict[str, int] = {}
    for obj in scene.objects:
        counts[obj.category] = counts.get(obj.category, 0) + 1
    things = [f"{'a' if n == 1 else n} {name if n == 1 else plural(name)}" for name, n in counts.items()]
    ground = f"{scene.terrain} ground" + (f" with {scene.liquid} pools" if scene.liquid else "")
    when = {"day": "in daylight", "dusk": "at dusk", "night": "at night"}[scene.time]
    return f"{ground}, {when}; you can see {', '.join(things[:-1])}{' and ' if len(things) > 1 else ''}{things[-1]}"


def plural(word: str) -> str:
    irregular = {
        "mouse": "mice",
        "fish": "fish",
        "cactus": "cacti",
        "box": "boxes",
        "torch": "torches",
        "bush": "bushes",
    }
    return irregular.get(word, word + "s")


def write_split(out: Path, n: int, split: str, seed: int, log: Callable[[str], None] = print) -> Path:
    """Render `n` scenes of `split` into out/images and append their labels to out/<split>.jsonl."""
    sprites = Sprites(arcade_wheel(log))
    (out / "images").mkdir(parents=True, exist_ok=True)
    labels = out / f"{split}.jsonl"
    tmp = labels.with_suffix(".jsonl.tmp")
    with tmp.open("w") as f:
        for i, scene in enumerate(generate(n, split, seed)):
            render(scene, sprites).save(out / "images" / scene.file, optimize=True)
            f.write(json.dumps(scene.to_json()) + "\n")
            if (i + 1) % 50 == 0 or i + 1 == n:
                log(f"  {split}: {i + 1}/{n} scenes")
    tmp.replace(labels)
    return labels


def read_split(folder: Path, split: str) -> list[Scene]:
    path = folder / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {split} scenes; run `npc-sdk data scenes --out {folder}` first")
    return [Scene.from_json(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
