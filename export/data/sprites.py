"""The Kenney CC0 sprites the scenes are drawn with: the arcade wheel (pinned, sha256-checked, never installed)
and the sprites read from it, cropped to their opaque part and cached at the sizes asked for."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from npc_sdk.cache import cache_dir

ARCADE_WHEEL = "arcade==3.3.3"
ARCADE_SHA256 = "25f4e0e5b8bcbe7a7d087c0a23b19e9f423b0c70ec00945c8712c9a3e541ebd2"
SPRITE_ROOT = "arcade/resources/assets/images/"


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


class AspectTable(dict):
    """width / height of each sprite's opaque part, read on first use."""

    def __init__(self, sprites: Sprites) -> None:
        super().__init__()
        self.sprites = sprites

    def get(self, name: str, default: float = 1.0) -> float:  # type: ignore[override]
        if name not in self:
            raw = self.sprites.raw(name)
            self[name] = raw.width / raw.height
        return self[name]
