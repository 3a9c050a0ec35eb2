"""Compose the two demo screenshots in npc_sdk/assets/scenes/ from Kenney's CC0 sprites in the arcade wheel.

Reproduce with:  python scripts/make_demo_scenes.py   (downloads the arcade wheel with pip, never installs it)
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "npc_sdk" / "assets" / "scenes"
ROOT = "arcade/resources/assets/images/"
TILE = 64  # sprites are 128 px; scenes are 10x6 tiles of 64 px = 640x384

# (sky colour, ground tile row, [(sprite, column, row)]) with row 0 at the top
SCENES = {
    "meadow_slimes.png": (
        (135, 196, 250),
        "tiles/grassMid.png",
        [
            ("tiles/bush.png", 0, 4),
            ("enemies/slimeGreen.png", 3, 4),
            ("enemies/slimeBlue.png", 5, 4),
            ("items/gemRed.png", 7, 3),
            ("tiles/signRight.png", 9, 4),
            ("animated_characters/female_adventurer/femaleAdventurer_idle.png", 1, 4),
        ],
    ),
    "lava_cave_key.png": (
        (46, 34, 52),
        "tiles/stoneMid.png",
        [
            ("tiles/torch1.png", 0, 3),
            ("tiles/lava.png", 4, 5),
            ("tiles/lava.png", 5, 5),
            ("items/keyYellow.png", 8, 4),
            ("enemies/bee.png", 5, 2),
            ("tiles/doorClosed_mid.png", 9, 4),
            ("tiles/doorClosed_top.png", 9, 3),
            ("tiles/torch1.png", 7, 3),
        ],
    ),
}


def arcade_wheel(tmp: Path) -> zipfile.ZipFile:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(tmp), "arcade==3.3.3"],
        check=True,
    )
    return zipfile.ZipFile(next(tmp.glob("arcade-*.whl")))


def sprite(wheel: zipfile.ZipFile, name: str) -> Image.Image:
    return (
        Image.open(io.BytesIO(wheel.read(ROOT + name)))
        .convert("RGBA")
        .resize((TILE, TILE), Image.Resampling.NEAREST)
    )


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = arcade_wheel(Path(tmp))
        for filename, (sky, ground, placed) in SCENES.items():
            scene = Image.new("RGBA", (10 * TILE, 6 * TILE), sky + (255,))
            for col in range(10):
                scene.alpha_composite(sprite(wheel, ground), (col * TILE, 5 * TILE))
            for name, col, row in placed:
                scene.alpha_composite(sprite(wheel, name), (col * TILE, row * TILE))
            scene.convert("RGB").save(OUT / filename, optimize=True)
            print("wrote", OUT / filename)


if __name__ == "__main__":
    main()
