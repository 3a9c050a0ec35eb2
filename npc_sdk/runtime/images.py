"""Screenshot decoding, validation and the one preprocessing step every image encoder input goes through.

Preprocessing (the single documented place; torch reference, ONNX runtime and training all call `preprocess`):
  1. convert to RGB (alpha dropped, greyscale expanded);
  2. letterbox into the encoder's 448x256 canvas: scale (bicubic) so the whole picture fits, keeping its aspect
     ratio, and centre it; the bars are grey 127, which normalises to 0. Nothing is cropped: a 16:9 screenshot
     fills 448x252, a 21:9 one 448x192, a 4:3 one 341x256, a square one 256x256;
  3. scale to float and normalise as the EfficientNet-Lite TF checkpoint was trained: (x - 127) / 128;
  4. lay out as [1, 3, 256, 448] float32 (NCHW).
The canvas is wide because games are: 448x256 is 8x14 cells of 32 px for the encoder's grid v_I (112 cells; v_mid
is 16x28 cells of 16 px), 2.3x the pixels of the 224x224 crop EfficientNet-Lite0 was trained on.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import InvalidInputError

IMAGE_WIDTH = 448  # the encoder's canvas, in pixels: 14 cells of 32
IMAGE_HEIGHT = 256  # 8 cells of 32
GRID = (IMAGE_HEIGHT // 32, IMAGE_WIDTH // 32)  # rows, columns of v_I
PAD_VALUE = 127  # letterbox bars, 0 after normalisation
PIXEL_MEAN = 127.0  # on 0..255 values, same for R, G and B
PIXEL_STD = 128.0
MAX_PIXELS = 8192 * 8192  # larger declared sizes are refused before decoding (decompression bombs)

ImageInput = Image.Image | np.ndarray | bytes | str | Path


def _check_size(width: int, height: int, field: str) -> None:
    if width <= 0 or height <= 0:
        raise InvalidInputError(field, f"image is {width}x{height}; both sides must be at least 1 pixel")
    if width * height > MAX_PIXELS:
        raise InvalidInputError(field, f"image is {width}x{height}, over the limit of {MAX_PIXELS} pixels")


def decode_bytes(data: bytes, field: str = "screenshot") -> Image.Image:
    """Decode an encoded image (PNG, JPEG, anything Pillow reads) with size checks before the pixels are read."""
    if not data:
        raise InvalidInputError(field, "image data is empty")
    try:
        image = Image.open(io.BytesIO(data))
        _check_size(image.width, image.height, field)
        image.load()
    except InvalidInputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInputError(field, f"bytes are not a decodable image ({exc})") from exc
    return image


def decode_raw(
    data: bytes, width: int, height: int, channels: int, *, bottom_up: bool = False, field: str = "screenshot"
) -> Image.Image:
    """Raw 8-bit pixels (RGB8 or RGBA8, rows top-down unless `bottom_up`, as Unity's textures are)."""
    if channels not in (3, 4):
        raise InvalidInputError(field, f"raw pixels need 3 (RGB8) or 4 (RGBA8) channels, got {channels}")
    _check_size(width, height, field)
    expected = width * height * channels
    if len(data) != expected:
        raise InvalidInputError(
            field, f"data is {len(data)} bytes but {width}x{height}x{channels} needs {expected}"
        )
    pixels = np.frombuffer(data, dtype=np.uint8).reshape(height, width, channels)
    if bottom_up:
        pixels = pixels[::-1]
    return Image.fromarray(np.ascontiguousarray(pixels), "RGBA" if channels == 4 else "RGB")


def to_pil(image: ImageInput, field: str = "screenshot") -> Image.Image:
    """Accept a PIL image, an HxWx{1,3,4} uint8 array, encoded bytes or a file path; return a PIL image."""
    if isinstance(image, Image.Image):
        _check_size(image.width, image.height, field)
        return image
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_bytes(bytes(image), field)
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise InvalidInputError(field, f"no image file at {path}")
        return decode_bytes(path.read_bytes(), field)
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
            raise InvalidInputError(field, f"array must be HxW, HxWx3 or HxWx4, got shape {image.shape}")
        _check_size(image.shape[1], image.shape[0], field)
        if image.dtype != np.uint8:
            raise InvalidInputError(field, f"array must be uint8 (0..255), got {image.dtype}")
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        return Image.fromarray(np.ascontiguousarray(image))
    raise InvalidInputError(field, f"unsupported image type {type(image).__name__}")


def letterbox(pil: Image.Image) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """The RGB picture scaled to fit the canvas and centred on grey; also where it landed (x0, y0, x1, y1)."""
    scale = min(IMAGE_WIDTH / pil.width, IMAGE_HEIGHT / pil.height)
    w = min(IMAGE_WIDTH, max(1, round(pil.width * scale)))
    h = min(IMAGE_HEIGHT, max(1, round(pil.height * scale)))
    canvas = Image.new("RGB", (IMAGE_WIDTH, IMAGE_HEIGHT), (PAD_VALUE,) * 3)
    x0, y0 = (IMAGE_WIDTH - w) // 2, (IMAGE_HEIGHT - h) // 2
    canvas.paste(pil.resize((w, h), Image.Resampling.BICUBIC), (x0, y0))
    return canvas, (x0, y0, x0 + w, y0 + h)


def preprocess(image: ImageInput, field: str = "screenshot") -> np.ndarray:
    """Any accepted image -> normalised [1, 3, 256, 448] float32 pixels for the image encoder."""
    canvas, _ = letterbox(to_pil(image, field).convert("RGB"))
    pixels = (np.asarray(canvas, dtype=np.float32) - PIXEL_MEAN) / PIXEL_STD  # [256, 448, 3]
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])  # [1, 3, 256, 448]
