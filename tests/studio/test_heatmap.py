"""The heat map's per-cell scores: the grounding head cut out of the served fusion graph pools to exactly the tag
scores the server sees, and its hottest cell for a thing lies on that thing in the demo scene."""

from __future__ import annotations

import numpy as np
import pytest

from npc_sdk.demo import DEMO_PERSONA, scene_path
from npc_sdk.studio.heatmap import TagCells

pytestmark = pytest.mark.slow

# meadow_slimes.png: 10x6 tiles of 64 px (scripts/make_demo_scenes.py); (column, row) of each sprite
SPRITES = {"slime": [(3, 4), (5, 4)], "gem": [(7, 3)], "sign": [(9, 4)]}
TILE = 64


def test_the_cells_pool_to_the_served_scores_and_are_hottest_on_the_thing(exported_int4, runtime_int4):
    pytest.importorskip("onnx", reason="the heat map cuts the head out of fusion.onnx with the onnx package")
    png = scene_path("meadow_slimes.png").read_bytes()
    found = TagCells(exported_int4).scores(png)
    assert found["available"] and (found["rows"], found["cols"]) == (16, 28)
    _, served = runtime_int4.see("What is that?", DEMO_PERSONA, scene_path("meadow_slimes.png"))
    names = [t.name for t in runtime_int4.tags]
    for tag, t in found["tags"].items():
        assert t["score"] == pytest.approx(float(served[names.index(tag)]), abs=2e-3), tag
    assert {n for n, p in zip(names, served, strict=True) if p >= 0.05} == set(found["tags"])
    x0, y0, x1, y1 = found["box"]
    scale = (x1 - x0) / 640  # the scene is 640x384, letterboxed into 448x256
    for tag, tiles in SPRITES.items():
        cells = np.asarray(found["tags"][tag]["cells"]).reshape(16, 28)
        row, col = np.unravel_index(cells.argmax(), cells.shape)
        x, y = (col + 0.5) * 16, (row + 0.5) * 16  # the hottest cell's centre in the letterbox
        on = [
            x0 + (c * TILE - 16) * scale <= x <= x0 + ((c + 1) * TILE + 16) * scale
            and y0 + (r * TILE - 16) * scale <= y <= y0 + ((r + 1) * TILE + 16) * scale
            for c, r in tiles
        ]
        assert any(on), f"{tag}: hottest cell ({row}, {col}) is on none of its sprites {tiles}"
        assert cells.max() > 0.5 and cells[0, 0] < 0.05  # sure where it is; the sky's corner holds none of it
