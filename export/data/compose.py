"""The plan of a scene (what to draw, in order), composed from a family, an aspect and a seed.

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
"""

from __future__ import annotations

import contextvars
import math
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from ..model.vocabulary import BY_NAME, OBJECTS
from .scene_lexicon import FLOATING, SPRITES

STYLES = ("side", "cave", "topdown", "closeup")
ASPECTS = {"4:3": (4, 3), "16:10": (16, 10), "16:9": (16, 9), "21:9": (21, 9)}
WIDTHS = (512, 640, 768)
STYLE_WEIGHTS = {"side": 4, "cave": 2, "topdown": 3, "closeup": 1}

GROUNDS = ("grass", "snow", "sand", "stone")
SKIES = {  # top and bottom of the sky gradient
    "day": ((92, 164, 240), (170, 214, 250)),
    "dusk": ((70, 60, 120), (248, 160, 104)),
    "night": ((10, 12, 40), (34, 40, 90)),
}
LIGHT = {"day": (1.0, 1.0, 1.0), "dusk": (1.0, 0.82, 0.7), "night": (0.45, 0.5, 0.78)}  # applied to the world
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


# ---- splits ----------------------------------------------------------------------------------------------------
def _bucket(key: str, modulo: int) -> int:
    return zlib.crc32(key.encode()) % modulo


def is_reserved_pair(terrain: str, category: str) -> bool:
    """(terrain, category) combinations that only the heldout_pairs split shows."""
    return _bucket(f"pair:{terrain}:{category}", 4) == 0
