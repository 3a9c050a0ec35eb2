"""Training pictures: families, aspects, scales, labels measured on the pixels, splits, and the dataset format."""

from __future__ import annotations

import json

import numpy as np
import pytest
from npc_export.data.compose import ASPECTS, STYLES, Op, Plan, compose
from npc_export.data.datasets import Dataset, DatasetError
from npc_export.data.render import render
from npc_export.data.splits import HELDOUT_FAMILIES, generate, has_reserved_pair, rerender
from npc_export.data.sprites import AspectTable, Sprites, arcade_wheel
from npc_export.model.vocabulary import builtin_vocabulary


@pytest.fixture(scope="module")
def sprites():
    return Sprites(arcade_wheel(log=lambda _m: None))


def test_the_generator_is_deterministic_for_a_seed(sprites):
    a = [(s.to_json(), img.tobytes()) for s, img in generate(6, "train", 3, sprites)]
    b = [(s.to_json(), img.tobytes()) for s, img in generate(6, "train", 3, sprites)]
    c = [s.to_json() for s, _ in generate(6, "train", 4, sprites)]
    assert a == b and [x[0] for x in a] != c
    scene, image = next(generate(1, "heldout_pairs", 3, sprites))
    assert rerender(scene, sprites).tobytes() == image.tobytes()  # labels alone give the picture back


def test_families_aspects_and_scales_cover_what_games_send(sprites):
    scenes = [s for s, _ in generate(120, "train", 11, sprites)]
    assert {s.family for s in scenes} == set(STYLES)
    assert {s.aspect for s in scenes} == set(ASPECTS)
    for s in scenes:
        w, h = s.size
        a, b = ASPECTS[s.aspect]
        assert abs(w / h - a / b) < 0.02
    heights = [(o.box[3] - o.box[1]) / s.size[1] for s in scenes for o in s.objects]
    assert min(heights) < 0.08 and max(heights) > 0.3  # from tiny to a third of the frame
    assert any(s.hud for s in scenes) and not all(s.hud for s in scenes)
    assert any(o.visible < 0.95 for s in scenes for o in s.objects)  # some things are partly hidden
    assert {s.time for s in scenes} == {"", "day", "dusk", "night"}  # caves and flat close-ups tell no time


def test_each_label_is_measured_on_the_pixels(sprites):
    """Removing a labelled thing from the plan changes pixels inside the box it was drawn in, and nowhere else."""
    table = AspectTable(sprites)
    checked = 0
    for seed in range(8):
        plan = compose("side", "16:9", seed, aspect_of=table, avoid_pairs=True)
        plan.ops = [op for op in plan.ops if op.kind != "light"]  # light is global: it would move every pixel
        plan.hud_ops = []
        full, labels = render(plan, sprites)
        full = np.asarray(full, dtype=np.int16)
        for obj in labels["objects"]:
            bx0, by0, bx1, by1 = obj.box
            drawn = (
                next(  # the sprite op of this thing: same category and sprite, and its box holds the label's
                    op
                    for op in plan.ops
                    if op.kind == "sprite"
                    and 0 < op.owner <= len(plan.objects)
                    and plan.objects[op.owner - 1] == (obj.category, obj.sprite)
                    and op.args[1] <= bx0
                    and op.args[2] <= by0
                    and bx1 <= op.args[3]
                    and by1 <= op.args[4]
                )
            )
            x0, y0, x1, y1 = drawn.args[1:]
            without = Plan(
                plan.family, plan.aspect, plan.seed, plan.size, ops=[op for op in plan.ops if op is not drawn]
            )
            diff = np.abs(full - np.asarray(render(without, sprites)[0], dtype=np.int16)).sum(axis=2) > 0
            assert diff[by0:by1, bx0:bx1].sum() > 0.3 * (bx1 - bx0) * (by1 - by0)
            diff[max(0, y0) : y1, max(0, x0) : x1] = False
            assert not diff.any()
            checked += 1
    assert checked >= 10


def test_a_thing_hidden_behind_the_hud_is_not_labelled(sprites):
    plan = Plan("side", "16:9", 0, (320, 180))
    plan.ops.append(Op("gradient", ((90, 160, 240), (170, 210, 250))))
    plan.thing("gem", "items/gemBlue.png", (20, 20, 60, 60))
    plan.thing("coin", "items/coinGold.png", (200, 20, 240, 60))
    plan.hud_ops.append(Op("rect", ((10, 10, 70, 70), (30, 30, 30), (240, 240, 240), 1), owner=-1))
    plan.hud = True
    _, labels = render(plan, sprites)
    assert [o.category for o in labels["objects"]] == ["coin"]


def test_splits_keep_families_and_pairs_apart(sprites):
    for split in ("train", "val"):
        for s, _ in generate(60, split, 0, sprites):
            assert (s.family, s.aspect) not in HELDOUT_FAMILIES
            assert not has_reserved_pair(s)
    held = [s for s, _ in generate(20, "heldout_family", 0, sprites)]
    assert {(s.family, s.aspect) for s in held} <= set(HELDOUT_FAMILIES)
    assert all(has_reserved_pair(s) for s, _ in generate(20, "heldout_pairs", 0, sprites))


def test_data_scenes_cli_writes_a_dataset_in_the_documented_format(tmp_path):
    from npc_sdk.cli import main

    args = [
        "data",
        "scenes",
        "--n",
        "3",
        "--val",
        "2",
        "--heldout",
        "2",
        "--out",
        str(tmp_path),
        "--seed",
        "5",
    ]
    assert main(args) == 0
    ds = Dataset.open(tmp_path)
    assert ds.tag_names == tuple(t.name for t in builtin_vocabulary())
    train = ds.split("train")
    assert len(train) == 3 and all(p.image.is_file() and p.tags for p in train)
    assert all(set(tag for tag, _ in p.boxes) <= set(p.tags) for p in train)
    assert len(ds.split("heldout_family")) == 2 and len(ds.split("val")) == 2


def test_a_studio_dataset_is_checked_line_by_line(tmp_path):
    (tmp_path / "images").mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "a.png")
    (tmp_path / "dataset.json").write_text(
        json.dumps({"tags": {"lantern": {}, "ferryman": {"words": ["ferryman"]}}})
    )
    lines = [
        {"file": "a.png", "tags": ["lantern"]},
        {"file": "a.png", "tags": ["dragon"]},
    ]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    ds = Dataset.open(tmp_path)
    assert [t.words for t in ds.vocabulary] == [("lantern", "lanterns"), ("ferryman",)]
    with pytest.raises(DatasetError, match=r"train.jsonl:2: tags: 'dragon' is not in the vocabulary"):
        ds.split("train")
    (tmp_path / "train.jsonl").write_text(json.dumps({"file": "../x.png", "tags": []}))
    with pytest.raises(DatasetError, match="file: '../x.png' points outside images/"):
        ds.split("train")
    bad_box = {"file": "a.png", "tags": ["lantern"], "boxes": [{"tag": "lantern", "box": [5, 5, 2, 9]}]}
    (tmp_path / "train.jsonl").write_text(json.dumps(bad_box))
    with pytest.raises(DatasetError, match=r"train.jsonl:1: boxes\[0\]"):
        ds.split("train")
