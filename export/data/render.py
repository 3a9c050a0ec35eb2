"""A plan drawn into pixels, with its labels measured on them.

Labels are measured on the rendered pixels, not assumed from the plan: every labelled element is drawn into an
owner buffer as well, and a thing counts as visible when at least `MIN_VISIBLE` of its opaque pixels survive
(and at least `MIN_PIXELS` of them) and the tight box of those pixels keeps at least `MIN_CANVAS_SIDE` pixels on
each side once the picture is letterboxed for the encoder (smaller is below what a 32-pixel grid can tell); its
box is that tight box. Terrain and liquid count when they cover `MIN_GROUND` of the frame. The time of day is
labelled only where the picture shows it (a sky, or the light of a top-down map).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from npc_sdk.runtime.images import IMAGE_HEIGHT, IMAGE_WIDTH

from .compose import DOOR, DOOR_TOP, LIGHT, TERRAIN_OWNER, Plan
from .sprites import Sprites

MIN_VISIBLE = 0.4
MIN_PIXELS = 40
MIN_CANVAS_SIDE = (
    8  # a thing narrower or shorter than this in the encoder's 448x256 letterbox is too small to tell
)
MIN_GROUND = 0.02


# ---- labels --------------------------------------------------------------------------------------------------
@dataclass
class PlacedObject:
    category: str
    sprite: str
    box: tuple[int, int, int, int]  # tight box of its visible pixels: x0, y0, x1, y1, top-left origin
    visible: float = 1.0  # share of its opaque pixels left visible (not covered, not cut by the frame)


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
