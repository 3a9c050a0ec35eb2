import io

import numpy as np
import pytest
from PIL import Image

from npc_sdk.demo import scene_path
from npc_sdk.errors import InvalidInputError
from npc_sdk.runtime.images import IMAGE_HEIGHT, IMAGE_WIDTH, decode_raw, letterbox, preprocess


def _png(width: int, height: int, colour=(200, 10, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, "PNG")
    return buf.getvalue()


def test_every_input_kind_gives_the_same_normalised_tensor():
    path = scene_path("meadow_slimes.png")
    pil = Image.open(path)
    from_path = preprocess(path)
    assert from_path.shape == (1, 3, IMAGE_HEIGHT, IMAGE_WIDTH) and from_path.dtype == np.float32
    np.testing.assert_array_equal(from_path, preprocess(path.read_bytes()))
    np.testing.assert_array_equal(from_path, preprocess(pil))
    np.testing.assert_array_equal(from_path, preprocess(np.asarray(pil.convert("RGB"))))
    assert -1.0 <= from_path.min() and from_path.max() <= 1.0


def test_normalisation_matches_the_documented_constants():
    pixels = preprocess(_png(300, 300, (127, 255, 0)))
    centre = pixels[0, :, IMAGE_HEIGHT // 2, IMAGE_WIDTH // 2]
    assert centre[0] == pytest.approx(0.0)
    assert centre[1] == pytest.approx(128 / 128)
    assert centre[2] == pytest.approx(-127 / 128)


@pytest.mark.parametrize("width, height", [(640, 480), (1920, 1080), (2560, 1080), (300, 300), (256, 1024)])
def test_every_aspect_reaches_the_encoder_with_its_edges(width, height):
    """Letterbox, not crop: a white frame one pixel wide around a black picture is still there on the canvas."""
    picture = np.zeros((height, width, 3), dtype=np.uint8)
    edge = max(1, round(max(width / IMAGE_WIDTH, height / IMAGE_HEIGHT)) * 2)  # survives the downscale
    picture[:edge], picture[-edge:], picture[:, :edge], picture[:, -edge:] = 255, 255, 255, 255
    canvas, (x0, y0, x1, y1) = letterbox(Image.fromarray(picture))
    assert canvas.size == (IMAGE_WIDTH, IMAGE_HEIGHT)
    assert (x1 - x0) / (y1 - y0) == pytest.approx(width / height, rel=0.02)  # the aspect is kept
    assert x1 - x0 == IMAGE_WIDTH or y1 - y0 == IMAGE_HEIGHT  # and the picture is as large as fits
    arr = np.asarray(canvas, dtype=np.int16)
    for row, col in (
        (y0, (x0 + x1) // 2),
        (y1 - 1, (x0 + x1) // 2),
        ((y0 + y1) // 2, x0),
        ((y0 + y1) // 2, x1 - 1),
    ):
        assert arr[row, col].mean() > 100, (row, col)  # each edge's middle is bright: nothing was cut
    assert arr[(y0 + y1) // 2, (x0 + x1) // 2].mean() < 30  # and the middle is the picture's black
    pixels = preprocess(picture)
    if x0 > 0:  # the bars are grey 127: zero after normalisation
        assert np.abs(pixels[0, :, :, : x0 - 1]).max() == 0.0
    if y0 > 0:
        assert np.abs(pixels[0, :, : y0 - 1, :]).max() == 0.0


def test_raw_bottom_up_rows_are_flipped():
    top_down = np.zeros((2, 3, 4), dtype=np.uint8)
    top_down[0] = 255  # white top row
    bottom_up = top_down[::-1].tobytes()
    img = decode_raw(bottom_up, 3, 2, 4, bottom_up=True)
    assert np.asarray(img)[0, 0, 0] == 255 and np.asarray(img)[1, 0, 0] == 0


@pytest.mark.parametrize(
    "bad, needle",
    [
        (np.zeros((0, 0, 3), dtype=np.uint8), "at least 1 pixel"),
        (b"this is not an image", "not a decodable image"),
        (b"", "empty"),
        (_png(40, 40)[:60], "not a decodable image"),
        (np.zeros((4, 4, 3), dtype=np.float32), "uint8"),
        (np.zeros((4, 4, 2), dtype=np.uint8), "shape"),
    ],
)
def test_bad_images_name_the_problem(bad, needle):
    with pytest.raises(InvalidInputError) as err:
        preprocess(bad)
    assert err.value.field == "screenshot"
    assert needle in str(err.value)


def test_raw_size_mismatch_names_the_sizes():
    with pytest.raises(InvalidInputError, match="needs 48"):
        decode_raw(b"\0" * 47, 4, 3, 4)


def test_declared_giant_image_is_refused_before_decoding():
    img = Image.new("L", (1, 1))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    data = bytearray(buf.getvalue())
    # IHDR width/height live at bytes 16..24; declare 100000 x 100000 (CRC now wrong, size is checked first)
    data[16:24] = (100000).to_bytes(4, "big") * 2
    with pytest.raises(InvalidInputError, match="screenshot"):
        preprocess(bytes(data))
