"""Training screenshots: game scenes composed from Kenney's CC0 sprites in the arcade wheel, with exact labels.

Each scene belongs to a composition family, a layout style at an aspect ratio:

  side      side-view platformer: sky by time of day (stars at night), parallax hills, clouds, ground rows of one
            terrain with lava or water pools, floating platforms, things standing or flying;
  cave      side view underground: brick walls, stone ground and ledges, torches, ladders, doors, no sky;
  topdown   a map seen from above: tiled ground of one terrain, lava or water patches, things scattered,
            a light tint for the time of day;
  closeup   one or two things large, on a flat, gradient or terrain background, sometimes in an inventory slot;

at 4:3, 16:10, 16:9 or 21:9. Sprites range from tiny (a twentieth of the frame's height) to a third of it;
things overlap and are partly hidden by each other, by platforms and by a HUD (bars, hearts, text, a minimap)
drawn on top of a third of the pictures. Distractor sprites that are no category (a fly, a saw, a star, bridges,
switches, alien ground) appear too, so the head learns what not to name.

Labels are measured on the rendered pixels, not assumed from the plan: every labelled element is drawn into an
owner buffer as well, and a thing counts as visible when at least `MIN_VISIBLE` of its opaque pixels survive
(and at least `MIN_PIXELS` of them) and the tight box of those pixels keeps at least `MIN_CANVAS_SIDE` pixels on
each side once the picture is letterboxed for the encoder (smaller is below what a 32-pixel grid can tell); its
box is that tight box. Terrain and liquid count when they cover `MIN_GROUND` of the frame. The time of day is
labelled only where the picture shows it (a sky, or the light of a top-down map).

Splits:
  train            training families, never a reserved (terrain, category) pair;
  val              the same families and rule, another random stream: for calibrating per-tag thresholds;
  heldout_family   the held-out families (`HELDOUT_FAMILIES`), never seen in training: the main evaluation;
  heldout_pairs    training families, each scene with at least one reserved pair.
A scene is recomposed from its seed (`compose`), so the labels file stays small and re-rendering is exact.
"""

from __future__ import annotations

import contextvars
import hashlib
import io
import json
import math
import random
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from npc_sdk.cache import cache_dir
from npc_sdk.runtime.images import IMAGE_HEIGHT, IMAGE_WIDTH
from npc_sdk.runtime.scene import plural

from ..model.vocabulary import BY_NAME, OBJECTS
from .scene_lexicon import FLOATING, SPRITES

ARCADE_WHEEL = "arcade==3.3.3"
ARCADE_SHA256 = "25f4e0e5b8bcbe7a7d087c0a23b19e9f423b0c70ec00945c8712c9a3e541ebd2"
SPRITE_ROOT = "arcade/resources/assets/images/"

STYLES = ("side", "cave", "topdown", "closeup")
ASPECTS = {"4:3": (4, 3), "16:10": (16, 10), "16:9": (16, 9), "21:9": (21, 9)}
WIDTHS = (512, 640, 768)
HELDOUT_FAMILIES = (("cave", "21:9"), ("topdown", "4:3"))
SPLITS = ("train", "val", "heldout_family", "heldout_pairs")
STYLE_WEIGHTS = {"side": 4, "cave": 2, "topdown": 3, "closeup": 1}

GROUNDS = ("grass", "snow", "sand", "stone")
SKIES = {  # top and bottom of the sky gradient
    "day": ((92, 164, 240), (170, 214, 250)),
    "dusk": ((70, 60, 120), (248, 160, 104)),
    "night": ((10, 12, 40), (34, 40, 90)),
}
LIGHT = {"day": (1.0, 1.0, 1.0), "dusk": (1.0, 0.82, 0.7), "night": (0.45, 0.5, 0.78)}  # applied to the world
MIN_VISIBLE = 0.4
MIN_PIXELS = 40
MIN_CANVAS_SIDE = (
    8  # a thing narrower or shorter than this in the encoder's 448x256 letterbox is too small to tell
)
MIN_GROUND = 0.02
HUD_SHARE = 0.33

DISTRACTORS = (
    "enemies/fly.png",
    "enemies/saw.png",
    "items/star.png",
    "tiles/bridgeA.png",
    "tiles/plantPurple.png",
    "tiles/switchGreen.png",
    "tiles/switchRed.png",
    "tiles/lockRed.png",
    "tiles/lockYellow.png",
    "space_shooter/meteorGrey_big1.png",
    "space_shooter/meteorGrey_med1.png",
)
LIFE_ICONS = ("space_shooter/playerLife1_blue.png", "space_shooter/playerLife1_green.png", "items/star.png")
DOOR, DOOR_TOP = "tiles/doorClosed_mid.png", "tiles/doorClosed_top.png"
HUD_WORDS = ("SCORE", "LEVEL", "HP", "GOLD", "TIME", "LIVES", "XP", "QUEST", "MAP")


# ---- labels --------------------------------------------------------------------------------------------------
@dataclass
class PlacedObject:
    category: str
    sprite: str
    box: tuple[int, int, int, int]  # tight box of its visible pixels: x0, y0, x1, y1, top-left origin
    visible: float = 1.0  # share of its opaque pixels left visible (not covered, not cut by the frame)


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
    """Sprite PNGs read straight from the wheel, cropped to their opaque part, cached at the sizes asked for."""

    def __init__(self, wheel: Path) -> None:
        self.zip = zipfile.ZipFile(wheel)
        self._raw: dict[str, Image.Image] = {}
        self._cache: dict[tuple[str, int, int, bool], Image.Image] = {}

    def raw(self, name: str, crop: bool = True) -> Image.Image:
        key = name + ("#crop" if crop else "")
        if key not in self._raw:
            img = Image.open(io.BytesIO(self.zip.read(SPRITE_ROOT + name))).convert("RGBA")
            box = img.getchannel("A").getbbox() if crop else None
            self._raw[key] = img.crop(box) if box else img
        return self._raw[key]

    def get(self, name: str, width: int, height: int, *, crop: bool = True) -> Image.Image:
        key = (name, width, height, crop)
        if key not in self._cache:
            if len(self._cache) > 4000:
                self._cache.clear()
            self._cache[key] = self.raw(name, crop).resize((width, height), Image.Resampling.BILINEAR)
        return self._cache[key]

    def fit(self, name: str, height: int) -> Image.Image:
        """The sprite's opaque part at `height`, its aspect kept."""
        raw = self.raw(name)
        width = max(1, round(raw.width * height / raw.height))
        return self.get(name, width, max(1, height))


# ---- the plan: what to draw, in order ------------------------------------------------------------------------
# Owners in the label buffer: 0 nothing labelled, 1.. objects, then terrain and liquid classes.
TERRAIN_OWNER = {name: 1000 + i for i, name in enumerate((*GROUNDS, "lava", "water"))}


@dataclass
class Op:
    kind: str  # gradient | sprite | tile | poly | ellipse | rect | text | stars | light | blur
    args: tuple
    owner: int = 0  # label owner of the pixels this op covers (sprites and tiles); -1 hides what is below


@dataclass
class Plan:
    family: str
    aspect: str
    seed: int
    size: tuple[int, int]
    time: str = ""
    terrain: str = ""
    liquid: str = ""
    hud: bool = False
    ops: list[Op] = field(default_factory=list)
    objects: list[tuple[str, str]] = field(default_factory=list)  # (category, sprite), owner = index + 1
    hud_ops: list[Op] = field(default_factory=list)  # drawn after the light, on top of everything

    def thing(self, category: str, sprite: str, box: tuple[int, int, int, int]) -> None:
        self.objects.append((category, sprite))
        self.ops.append(Op("sprite", (sprite, *box), owner=len(self.objects)))

    def prop(self, sprite: str, box: tuple[int, int, int, int]) -> None:
        """A sprite that is no category: it hides what is under it and is labelled as nothing."""
        self.ops.append(Op("sprite", (sprite, *box), owner=-1))


def _size(rng: random.Random, aspect: str) -> tuple[int, int]:
    a, b = ASPECTS[aspect]
    w = rng.choice(WIDTHS)
    return w, round(w * b / a)


def _sprite_height(rng: random.Random, frame_h: int, lo: float = 0.06, hi: float = 0.33) -> int:
    """Heights spread evenly on a log scale between lo and hi of the frame."""
    return max(8, round(frame_h * math.exp(rng.uniform(math.log(lo), math.log(hi)))))


# Categories a caller wants in the next composed scenes (corpus_scenes.py: a picture for a written scene line).
WANTED: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("wanted_things", default=())


def _pick_things(rng: random.Random, n: int, allowed: Callable[[str], bool]) -> list:
    wanted = [BY_NAME[name] for name in WANTED.get()]
    if wanted:  # exactly what the writer said is there, nothing the reply would ignore
        return wanted
    pool = [c for c in OBJECTS if allowed(c.name)]
    return rng.sample(pool, min(n, len(pool)))


def compose(family: str, aspect: str, seed: int, *, aspect_of: dict[str, float], avoid_pairs: bool) -> Plan:
    """The drawing plan of one scene, the same for the same arguments.

    `aspect_of` gives each sprite's width/height (so boxes keep sprite shapes); `avoid_pairs` keeps reserved
    (terrain, category) pairs out.
    """
    rng = random.Random(f"npc-scene:{family}:{aspect}:{seed}")
    plan = Plan(family, aspect, seed, _size(rng, aspect))
    {"side": _side, "cave": _cave, "topdown": _topdown, "closeup": _closeup}[family](
        rng, plan, aspect_of, avoid_pairs
    )
    if family != "closeup" and rng.random() < HUD_SHARE or family == "closeup" and rng.random() < 0.15:
        _hud(rng, plan)
    return plan


def _allowed(plan: Plan, avoid_pairs: bool) -> Callable[[str], bool]:
    grounds = [g for g in (plan.terrain, plan.liquid) if g]
    if not avoid_pairs:
        return lambda _c: True
    return lambda c: not any(is_reserved_pair(g, c) for g in grounds)


def _sky(rng: random.Random, plan: Plan, time: str) -> None:
    w, h = plan.size
    top, bottom = SKIES[time]
    jitter = [rng.randint(-12, 12) for _ in range(3)]
    top = tuple(max(0, min(255, c + j)) for c, j in zip(top, jitter, strict=True))
    plan.ops.append(Op("gradient", (top, bottom)))
    if time == "night":
        plan.ops.append(Op("stars", (rng.randint(20, 80), rng.randrange(1 << 30))))
    if rng.random() < 0.6:  # parallax hills: one or two darker silhouettes
        for layer in range(rng.randint(1, 2)):
            base = h * rng.uniform(0.45, 0.8)
            pts = [(0, h)]
            for i in range(9):
                pts.append((w * i / 8, base - rng.uniform(0, h * 0.25)))
            pts.append((w, h))
            shade = 0.55 + 0.15 * layer
            colour = tuple(int(c * shade) for c in bottom)
            plan.ops.append(Op("poly", (tuple(pts), colour)))
    if time != "night" and rng.random() < 0.5:
        for _ in range(rng.randint(1, 4)):
            cx, cy = rng.uniform(0, w), rng.uniform(0, h * 0.35)
            rw, rh = rng.uniform(w * 0.05, w * 0.14), rng.uniform(h * 0.03, h * 0.07)
            plan.ops.append(Op("ellipse", ((cx - rw, cy - rh, cx + rw, cy + rh), (245, 245, 250))))


def _pools(rng: random.Random, plan: Plan, cols: int, longest: int) -> set[int]:
    """Draws the ground's liquid (or none) and which tile columns hold it: a run of 1..longest columns."""
    plan.liquid = rng.choice(("", "", "lava", "water"))
    if not plan.liquid:
        return set()
    start = rng.randrange(max(1, cols - 2))
    return set(range(start, start + rng.randint(1, longest)))


def _side(rng: random.Random, plan: Plan, aspect_of: dict[str, float], avoid_pairs: bool) -> None:
    w, h = plan.size
    plan.time = rng.choice(("day", "day", "dusk", "night"))
    _sky(rng, plan, plan.time)
    alien = rng.random() < 0.1  # alien ground: no labelled terrain at all
    plan.terrain = "" if alien else rng.choice(GROUNDS)
    tile = max(12, round(h / rng.uniform(4.5, 11)))
    rows = rng.choice((1, 2, 2))
    ground_top = h - rows * tile
    cols = math.ceil(w / tile)
    pools = _pools(rng, plan, cols, longest=3)
    top, fill = ("tiles/planetMid.png", "tiles/planetCenter.png") if alien else SPRITES[plan.terrain]
    ground_owner = -1 if alien else TERRAIN_OWNER[plan.terrain]
    for c in range(cols):
        x = c * tile
        if c in pools:
            liquid = SPRITES[plan.liquid][0]
            plan.ops.append(Op("tile", (liquid, x, ground_top, tile, tile), TERRAIN_OWNER[plan.liquid]))
        else:
            plan.ops.append(Op("tile", (top, x, ground_top, tile, tile), ground_owner))
        for r in range(1, rows):
            plan.ops.append(Op("tile", (fill, x, ground_top + r * tile, tile, tile), ground_owner))
    # floating platforms (half tiles of the ground's terrain)
    ledges: list[tuple[int, int, int]] = []  # (x0, x1, top y)
    for _ in range(rng.choice((0, 0, 1, 2))):
        n = rng.randint(2, 4)
        x0 = rng.randrange(0, max(1, w - n * tile))
        y = rng.randint(int(h * 0.3), max(int(h * 0.3) + 1, ground_top - 2 * tile))
        name = "tiles/planetHalf_mid.png" if alien else f"tiles/{plan.terrain}Half_mid.png"
        for i in range(n):
            plan.ops.append(Op("tile", (name, x0 + i * tile, y, tile, tile), ground_owner))
        ledges.append((x0, x0 + n * tile, y + int(tile * 0.1)))
    allowed = _allowed(plan, avoid_pairs)
    _place_standing_and_flying(rng, plan, aspect_of, allowed, ground_top, ledges, tile, pools)
    plan.ops.append(Op("light", (plan.time,)))


def _place_standing_and_flying(
    rng: random.Random,
    plan: Plan,
    aspect_of: dict[str, float],
    allowed: Callable[[str], bool],
    ground_top: int,
    ledges: list[tuple[int, int, int]],
    tile: int,
    pools: set[int],
) -> None:
    w, h = plan.size
    for cat in _pick_things(rng, rng.randint(1, 4), allowed):
        for _ in range(rng.choice((1, 1, 1, 2, 3) if cat.name == "coin" else (1, 1, 2))):
            sprite = rng.choice(SPRITES[cat.name])
            big = rng.random() < 0.15
            sh = _sprite_height(rng, h, 0.2, 0.34) if big else round(tile * rng.uniform(0.55, 1.0))
            sw = max(1, round(sh * aspect_of.get(sprite, 1.0)))
            if cat.name == "door":  # two tiles high: drawn as the door's top and middle sprites
                sh = 2 * sw
            if cat.name in FLOATING:
                x = rng.randrange(0, max(1, w - sw))
                bottom = rng.randint(min(sh + 2, ground_top - 1), max(sh + 3, ground_top - tile // 2))
            else:
                spots = [(0, w, ground_top)] + ledges
                x0, x1, bottom = rng.choice(spots)
                x = rng.randrange(x0, max(x0 + 1, x1 - sw))
                if bottom == ground_top and (x + sw // 2) // max(tile, 1) in pools:
                    continue  # nothing stands in lava
            plan.thing(cat.name, sprite, (x, bottom - sh, x + sw, bottom))
    for _ in range(rng.choice((0, 0, 1, 2))):
        name = rng.choice(DISTRACTORS)
        sh = round(tile * rng.uniform(0.5, 1.0))
        x = rng.randrange(0, max(1, w - sh))
        bottom = rng.randint(sh + 2, max(sh + 3, ground_top))
        plan.prop(name, (x, bottom - sh, x + round(sh * aspect_of.get(name, 1.0)), bottom))


def _cave(rng: random.Random, plan: Plan, aspect_of: dict[str, float], avoid_pairs: bool) -> None:
    w, h = plan.size
    plan.time = ""  # underground: no sky, no time of day
    tile = max(12, round(h / rng.uniform(4.5, 10)))
    dark = rng.uniform(0.25, 0.6)
    plan.ops.append(Op("gradient", ((int(40 * dark), int(30 * dark), int(30 * dark)), (60, 48, 44))))
    if rng.random() < 0.7:  # brick wall behind everything, darkened
        for r in range(math.ceil(h / tile)):
            for c in range(math.ceil(w / tile)):
                plan.ops.append(Op("tile", ("tiles/brickBrown.png", c * tile, r * tile, tile, tile), 0))
        plan.ops.append(Op("shade", (rng.uniform(0.3, 0.6),)))
    plan.terrain = "stone"
    rows = rng.choice((1, 2))
    ground_top = h - rows * tile
    cols = math.ceil(w / tile)
    pools = _pools(rng, plan, cols, longest=2)
    for c in range(cols):
        if c in pools:
            liquid = SPRITES[plan.liquid][0]
            plan.ops.append(
                Op("tile", (liquid, c * tile, ground_top, tile, tile), TERRAIN_OWNER[plan.liquid])
            )
        else:
            plan.ops.append(
                Op("tile", ("tiles/stoneMid.png", c * tile, ground_top, tile, tile), TERRAIN_OWNER["stone"])
            )
        for r in range(1, rows):
            plan.ops.append(
                Op(
                    "tile",
                    ("tiles/stoneCenter.png", c * tile, ground_top + r * tile, tile, tile),
                    TERRAIN_OWNER["stone"],
                )
            )
    ledges = []
    for _ in range(rng.choice((0, 1, 2))):
        n = rng.randint(2, 4)
        x0 = rng.randrange(0, max(1, w - n * tile))
        y = rng.randint(int(h * 0.25), max(int(h * 0.25) + 1, ground_top - 2 * tile))
        for i in range(n):
            plan.ops.append(
                Op("tile", ("tiles/stoneHalf_mid.png", x0 + i * tile, y, tile, tile), TERRAIN_OWNER["stone"])
            )
        ledges.append((x0, x0 + n * tile, y + int(tile * 0.1)))
    allowed = _allowed(plan, avoid_pairs)
    cave_likes = {
        "torch",
        "ladder",
        "door",
        "lever",
        "box",
        "bomb",
        "key",
        "gem",
        "coin",
        "mushroom",
        "rock",
        "spike",
    }

    def cave_allowed(c: str) -> bool:  # caves favour what caves hold, but anything may turn up
        return allowed(c) and (c in cave_likes or rng.random() < 0.35)

    _place_standing_and_flying(rng, plan, aspect_of, cave_allowed, ground_top, ledges, tile, pools)


def _topdown(rng: random.Random, plan: Plan, aspect_of: dict[str, float], avoid_pairs: bool) -> None:
    w, h = plan.size
    plan.time = rng.choice(("day", "day", "dusk", "night"))
    plan.terrain = rng.choice(GROUNDS)
    tile = max(16, round(h / rng.uniform(4, 9)))
    variants = {
        "grass": ("tiles/grassCenter.png", "topdown_tanks/tileGrass1.png", "topdown_tanks/tileGrass2.png"),
        "sand": ("tiles/sandCenter.png", "topdown_tanks/tileSand1.png", "topdown_tanks/tileSand2.png"),
        "snow": ("tiles/snowCenter.png",),
        "stone": ("tiles/stoneCenter.png",),
    }[plan.terrain]
    ground = rng.choice(variants)
    owner = TERRAIN_OWNER[plan.terrain]
    for r in range(math.ceil(h / tile)):
        for c in range(math.ceil(w / tile)):
            plan.ops.append(Op("tile", (ground, c * tile, r * tile, tile, tile), owner))
    plan.liquid = rng.choice(("", "lava", "water", "water"))
    if plan.liquid:
        cx, cy = rng.randrange(math.ceil(w / tile)), rng.randrange(math.ceil(h / tile))
        for _ in range(rng.randint(2, 7)):  # a blob of liquid tiles
            liquid = SPRITES[plan.liquid][0]
            plan.ops.append(
                Op("tile", (liquid, cx * tile, cy * tile, tile, tile), TERRAIN_OWNER[plan.liquid])
            )
            cx += rng.choice((-1, 0, 1))
            cy += rng.choice((-1, 0, 1))
    allowed = _allowed(plan, avoid_pairs)
    for cat in _pick_things(rng, rng.randint(1, 5), allowed):
        for _ in range(rng.choice((1, 1, 2, 3))):
            sprite = rng.choice(SPRITES[cat.name])
            sh = _sprite_height(rng, h, 0.07, 0.3)
            sw = max(1, round(sh * aspect_of.get(sprite, 1.0)))
            x, y = rng.randrange(0, max(1, w - sw)), rng.randrange(0, max(1, h - sh))
            plan.thing(cat.name, sprite, (x, y, x + sw, y + sh))
    for _ in range(rng.choice((0, 1, 2))):
        name = rng.choice(DISTRACTORS)
        sh = _sprite_height(rng, h, 0.07, 0.2)
        x, y = rng.randrange(0, max(1, w - sh)), rng.randrange(0, max(1, h - sh))
        plan.prop(name, (x, y, x + round(sh * aspect_of.get(name, 1.0)), y + sh))
    plan.ops.append(Op("light", (plan.time,)))


def _closeup(rng: random.Random, plan: Plan, aspect_of: dict[str, float], avoid_pairs: bool) -> None:
    w, h = plan.size
    background = rng.choice(("flat", "gradient", "terrain", "sky"))
    if background == "flat":
        plan.ops.append(Op("gradient", ((c := tuple(rng.randint(20, 230) for _ in range(3))), c)))
    elif background == "gradient":
        plan.ops.append(
            Op(
                "gradient",
                (
                    tuple(rng.randint(20, 230) for _ in range(3)),
                    tuple(rng.randint(20, 230) for _ in range(3)),
                ),
            )
        )
    elif background == "sky":
        plan.time = rng.choice(("day", "dusk", "night"))
        _sky(rng, plan, plan.time)
    else:  # a blurred band of ground, as seen behind a close-up
        plan.ops.append(Op("gradient", (SKIES["day"][0], SKIES["day"][1])))
        plan.terrain = rng.choice(GROUNDS)
        tile = round(h / 3)
        top, fill = SPRITES[plan.terrain]
        for c in range(math.ceil(w / tile)):
            plan.ops.append(
                Op("tile", (top, c * tile, h - 2 * tile, tile, tile), TERRAIN_OWNER[plan.terrain])
            )
            plan.ops.append(Op("tile", (fill, c * tile, h - tile, tile, tile), TERRAIN_OWNER[plan.terrain]))
        plan.ops.append(Op("blur", (rng.uniform(1.5, 4.0),)))
    if rng.random() < 0.4:  # an inventory slot or portrait frame behind the thing
        m = round(h * 0.12)
        plan.ops.append(
            Op(
                "rect",
                ((w // 2 - h // 2 + m, m, w // 2 + h // 2 - m, h - m), (40, 40, 52), (210, 190, 120), 4),
            )
        )
    allowed = _allowed(plan, avoid_pairs)
    things = _pick_things(rng, rng.choice((1, 1, 2)), allowed)
    for i, cat in enumerate(things):
        sprite = rng.choice(SPRITES[cat.name])
        sh = round(h * rng.uniform(0.3, 0.55))
        sw = max(1, round(sh * aspect_of.get(sprite, 1.0)))
        cx = w // 2 if len(things) == 1 else (w // 3 if i == 0 else 2 * w // 3)
        cx += rng.randint(-w // 10, w // 10)
        cy = h // 2 + rng.randint(-h // 10, h // 10)
        plan.thing(cat.name, sprite, (cx - sw // 2, cy - sh // 2, cx - sw // 2 + sw, cy - sh // 2 + sh))
    if plan.time:
        plan.ops.append(Op("light", (plan.time,)))


def _hud(rng: random.Random, plan: Plan) -> None:
    """Bars, hearts, words and numbers, a minimap: drawn over the scene, hiding what is under them."""
    w, h = plan.size
    plan.hud = True
    unit = max(8, round(h * rng.uniform(0.035, 0.06)))
    corner = rng.choice(("tl", "tr", "bl"))
    x0 = unit if corner in ("tl", "bl") else w - 12 * unit
    y0 = unit if corner in ("tl", "tr") else h - 3 * unit
    ops = plan.hud_ops
    if rng.random() < 0.7:  # a health bar
        fill = rng.uniform(0.2, 1.0)
        ops.append(
            Op("rect", ((x0, y0, x0 + 8 * unit, y0 + unit), (30, 30, 30), (240, 240, 240), 1), owner=-1)
        )
        ops.append(
            Op(
                "rect",
                (
                    (x0 + 1, y0 + 1, x0 + 1 + int((8 * unit - 2) * fill), y0 + unit - 1),
                    (200, 40, 40),
                    None,
                    0,
                ),
                owner=-1,
            )
        )
        y0 += unit + unit // 2
    if rng.random() < 0.6:  # hearts or life icons
        icon = rng.choice(LIFE_ICONS + ("heart",))
        for i in range(rng.randint(2, 5)):
            box = (x0 + i * (unit + 4), y0, x0 + i * (unit + 4) + unit, y0 + unit)
            if icon == "heart":
                ops.append(Op("heart", (box, (220, 30, 60)), owner=-1))
            else:
                ops.append(Op("sprite", (icon, *box), owner=-1))
    text = f"{rng.choice(HUD_WORDS)} {rng.randint(0, 99999)}"
    tx = rng.randrange(0, max(1, w - 10 * unit))
    ty = rng.choice((unit // 2, h - 2 * unit))
    ops.append(
        Op(
            "text",
            ((tx, ty), text, rng.choice(((255, 255, 255), (255, 230, 90), (20, 20, 20))), unit),
            owner=-1,
        )
    )
    if rng.random() < 0.3:  # a minimap
        m = round(h * 0.22)
        mx, my = w - m - unit, h - m - unit
        ops.append(Op("rect", ((mx, my, mx + m, my + m), (25, 45, 30), (200, 200, 200), 2), owner=-1))
        for _ in range(rng.randint(2, 6)):
            px, py = rng.randrange(mx + 3, mx + m - 3), rng.randrange(my + 3, my + m - 3)
            ops.append(
                Op(
                    "rect",
                    ((px, py, px + 3, py + 3), rng.choice(((255, 60, 60), (250, 250, 80))), None, 0),
                    owner=-1,
                )
            )


# ---- rendering -----------------------------------------------------------------------------------------------
_FONTS: dict[int, ImageFont.ImageFont | ImageFont.FreeTypeFont] = {}


def _font(size: int):
    if size not in _FONTS:
        _FONTS[size] = ImageFont.load_default(size=size)
    return _FONTS[size]


def render(plan: Plan, sprites: Sprites) -> tuple[Image.Image, dict]:
    """Pixels of the plan, and what is measurably visible in them (objects with boxes, terrain, liquid)."""
    w, h = plan.size
    canvas = Image.new("RGBA", (w, h), (0, 0, 0, 255))
    owners = np.zeros((h, w), dtype=np.int32)
    totals: dict[int, int] = {}

    def paste(img: Image.Image, x: int, y: int, owner: int) -> None:
        canvas.alpha_composite(img, (x, y)) if x >= 0 and y >= 0 else canvas.paste(img, (x, y), img)
        if owner == 0:
            return
        alpha = np.asarray(img.getchannel("A")) > 127
        if owner > 0:
            totals[owner] = totals.get(owner, 0) + int(alpha.sum())
        ys, xs = slice(max(0, y), min(h, y + img.height)), slice(max(0, x), min(w, x + img.width))
        if ys.stop <= ys.start or xs.stop <= xs.start:
            return  # entirely outside the frame
        sub = alpha[ys.start - y : ys.stop - y, xs.start - x : xs.stop - x]
        owners[ys, xs][sub] = max(owner, 0)

    for op in plan.ops + plan.hud_ops:
        k, a = op.kind, op.args
        if k == "gradient":
            (r0, g0, b0), (r1, g1, b1) = a
            t = np.linspace(0.0, 1.0, h)[:, None]
            grad = np.stack([r0 + (r1 - r0) * t, g0 + (g1 - g0) * t, b0 + (b1 - b0) * t], axis=-1)
            grad = np.broadcast_to(grad, (h, w, 3)).astype(np.uint8)  # astype copies: writable
            canvas = Image.fromarray(np.dstack([grad, np.full((h, w), 255, np.uint8)]), "RGBA").copy()
            owners[:] = 0
        elif k == "stars":
            n, seed = a
            srng = random.Random(seed)
            px = canvas.load()
            for _ in range(n):
                px[srng.randrange(w), srng.randrange(max(1, h * 2 // 3))] = (235, 235, 200, 255)
        elif k in ("sprite", "tile"):
            if k == "tile":
                name, x, y, tw, th = a
                img = sprites.get(name, tw, th, crop=False)
            else:
                name, x0, y0, x1, y1 = a
                x, y = x0, y0
                if name == DOOR and (y1 - y0) > 1.5 * (x1 - x0):
                    half = (y1 - y0) // 2
                    paste(sprites.get(DOOR_TOP, x1 - x0, half, crop=False), int(x0), int(y0), op.owner)
                    paste(
                        sprites.get(DOOR, x1 - x0, y1 - y0 - half, crop=False),
                        int(x0),
                        int(y0) + half,
                        op.owner,
                    )
                    continue
                img = sprites.get(name, max(1, x1 - x0), max(1, y1 - y0))
            paste(img, int(x), int(y), op.owner)
        elif k == "poly":
            pts, colour = a
            ImageDraw.Draw(canvas).polygon([(float(px), float(py)) for px, py in pts], fill=(*colour, 255))
        elif k == "ellipse":
            box, colour = a
            ImageDraw.Draw(canvas).ellipse(box, fill=(*colour, 255))
        elif k == "rect":
            box, fill, outline, width = a
            ImageDraw.Draw(canvas).rectangle(
                box, fill=(*fill, 255), outline=(*outline, 255) if outline else None, width=width
            )
            if op.owner:
                x0, y0, x1, y1 = (int(v) for v in box)
                owners[max(0, y0) : max(0, y1 + 1), max(0, x0) : max(0, x1 + 1)] = 0
        elif k == "heart":
            (x0, y0, x1, y1), colour = a
            d = ImageDraw.Draw(canvas)
            r = (x1 - x0) / 4
            d.ellipse((x0, y0, x0 + 2 * r, y0 + 2 * r), fill=(*colour, 255))
            d.ellipse((x1 - 2 * r, y0, x1, y0 + 2 * r), fill=(*colour, 255))
            d.polygon([(x0, y0 + r), (x1, y0 + r), ((x0 + x1) / 2, y1)], fill=(*colour, 255))
            owners[max(0, int(y0)) : int(y1) + 1, max(0, int(x0)) : int(x1) + 1] = 0
        elif k == "text":
            (tx, ty), text, colour, size = a
            d = ImageDraw.Draw(canvas)
            font = _font(size)
            d.text((tx, ty), text, fill=(*colour, 255), font=font)
            bbox = d.textbbox((tx, ty), text, font=font)
            owners[max(0, int(bbox[1])) : int(bbox[3]) + 1, max(0, int(bbox[0])) : int(bbox[2]) + 1] = 0
        elif k == "shade":
            (f,) = a
            arr = np.asarray(canvas).astype(np.float32)
            arr[..., :3] *= f
            canvas = Image.fromarray(arr.astype(np.uint8), "RGBA")
        elif k == "light":
            (time,) = a
            arr = np.asarray(canvas).astype(np.float32)
            arr[..., :3] *= np.asarray(LIGHT[time], dtype=np.float32)
            canvas = Image.fromarray(arr.astype(np.uint8), "RGBA")
        elif k == "blur":
            canvas = canvas.filter(ImageFilter.GaussianBlur(a[0]))

    counts = np.bincount(owners.ravel(), minlength=max(TERRAIN_OWNER.values()) + 1)
    frame = w * h
    objects = []
    for i, (category, sprite) in enumerate(plan.objects, start=1):
        seen = int(counts[i]) if i < counts.size else 0
        total = totals.get(i, 0)
        if total and seen >= MIN_PIXELS and seen / total >= MIN_VISIBLE:
            ys, xs = np.nonzero(owners == i)
            box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            if big_enough(box, plan.size):
                objects.append(PlacedObject(category, sprite, box, round(seen / total, 3)))
    terrain = (
        plan.terrain if plan.terrain and counts[TERRAIN_OWNER[plan.terrain]] >= MIN_GROUND * frame else ""
    )
    liquid = (
        plan.liquid if plan.liquid and counts[TERRAIN_OWNER[plan.liquid]] >= MIN_GROUND / 2 * frame else ""
    )
    labels = {"objects": objects, "terrain": terrain, "liquid": liquid, "time": plan.time, "hud": plan.hud}
    return canvas.convert("RGB"), labels


def big_enough(box: tuple[int, int, int, int], size: tuple[int, int]) -> bool:
    """Whether a visible box stays at least MIN_CANVAS_SIDE pixels on each side in the encoder's letterbox."""
    scale = min(IMAGE_WIDTH / size[0], IMAGE_HEIGHT / size[1])
    return min(box[2] - box[0], box[3] - box[1]) * scale >= MIN_CANVAS_SIDE


# ---- splits ----------------------------------------------------------------------------------------------------
def _bucket(key: str, modulo: int) -> int:
    return zlib.crc32(key.encode()) % modulo


def is_reserved_pair(terrain: str, category: str) -> bool:
    """(terrain, category) combinations that only the heldout_pairs split shows."""
    return _bucket(f"pair:{terrain}:{category}", 4) == 0


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
    aspect_of = _AspectTable(sprites)
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


class _AspectTable(dict):
    """width / height of each sprite's opaque part, read on first use."""

    def __init__(self, sprites: Sprites) -> None:
        super().__init__()
        self.sprites = sprites

    def get(self, name: str, default: float = 1.0) -> float:  # type: ignore[override]
        if name not in self:
            raw = self.sprites.raw(name)
            self[name] = raw.width / raw.height
        return self[name]


def rerender(scene: Scene, sprites: Sprites) -> Image.Image:
    """The picture of a labelled scene, from its family, aspect and seed."""
    avoid = scene.split in ("train", "val")
    plan = compose(scene.family, scene.aspect, scene.seed, aspect_of=_AspectTable(sprites), avoid_pairs=avoid)
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
