"""Scene data, the dialogue filter, the metrics, and a short real training run of the fusion."""

from __future__ import annotations

import json

import numpy as np
import pytest
from npc_export.dialogue_data import DialogueItem, judge, trim_to_sentence
from npc_export.metrics import (
    distinct_n,
    is_grounded,
    is_hallucinating,
    persona_predictions,
    repeats_itself,
)
from npc_export.scene_lexicon import TAG_WORDS, mentioned_categories
from npc_export.scenes import (
    Scene,
    Sprites,
    arcade_wheel,
    belongs_to,
    generate,
    is_reserved_layout,
    is_reserved_pair,
    render,
)


@pytest.fixture(scope="module")
def sprites():
    return Sprites(arcade_wheel(log=lambda _m: None))


def test_the_generator_is_deterministic_for_a_seed(sprites):
    a = [s.to_json() for s in generate(6, "train", seed=3)]
    b = [s.to_json() for s in generate(6, "train", seed=3)]
    c = [s.to_json() for s in generate(6, "train", seed=4)]
    assert a == b and a != c
    first = generate(1, "train", seed=3).__next__()
    assert render(first, sprites).tobytes() == render(Scene.from_json(a[0]), sprites).tobytes()


def test_each_label_box_is_where_its_sprite_was_drawn(sprites):
    for scene in generate(8, "heldout", seed=1):
        full = np.asarray(render(scene, sprites), dtype=np.int16)
        for k, obj in enumerate(scene.objects):
            without = Scene(
                scene.file,
                scene.split,
                scene.terrain,
                scene.liquid,
                scene.time,
                scene.objects[:k] + scene.objects[k + 1 :],
                scene.pools,
            )
            diff = np.abs(full - np.asarray(render(without, sprites), dtype=np.int16)).sum(axis=2) > 0
            x0, y0, x1, y1 = obj.box
            inside = diff[y0:y1, x0:x1].sum()
            assert inside > 0.1 * (x1 - x0) * (y1 - y0), (scene.file, obj)  # the sprite covers its box
            diff[y0:y1, x0:x1] = False
            assert not diff.any(), (scene.file, obj)  # and nothing outside it


def test_ground_and_pools_are_the_labelled_terrain(sprites):
    scene = next(s for s in generate(40, "train", seed=2) if s.liquid)
    img = np.asarray(render(scene, sprites))
    pool_col = scene.pools[0]
    ground_col = next(c for c in range(7) if c not in scene.pools)
    pool = img[5 * 64 + 40, pool_col * 64 + 32]
    ground = img[6 * 64 + 32, ground_col * 64 + 32]
    assert not np.array_equal(pool, ground)
    assert {scene.terrain, scene.liquid} <= set(scene.categories)


def test_heldout_scenes_show_pairs_and_layouts_training_never_sees():
    train = list(generate(150, "train", seed=0))
    heldout = list(generate(30, "heldout", seed=0))
    for s in train:
        grounds = [s.terrain] + ([s.liquid] if s.liquid else [])
        assert not any(is_reserved_pair(g, c) for g in grounds for c in s.object_categories)
        assert not is_reserved_layout(s.layout())
    train_layouts = {s.layout() for s in train}
    for s in heldout:
        assert belongs_to(s) == "heldout" and s.layout() not in train_layouts


def test_the_lexicon_finds_whole_words_in_any_case():
    assert mentioned_categories("Two SLIMES by the crate, and a key!") == {"slime", "box", "key"}
    assert mentioned_categories("A monkey in the keyhole") == set()  # no substrings
    assert all(len(w.split()) == 1 for w in TAG_WORDS)


def test_the_teacher_filter_keeps_grounded_in_character_replies():
    scene = Scene("x.png", "train", "snow", "", "night")
    scene.objects = []
    from npc_export.scenes import PlacedObject

    scene.objects.append(PlacedObject("slime", "enemies/slimeGreen.png", (0, 0, 64, 64)))
    assert judge("Watch that slime on the snow, lad.", scene, "scene") == ""
    assert judge("Watch that bee, lad, it stings hard.", scene, "scene") == "names_absent_thing"
    assert judge("The forge is hot today, lad.", scene, "scene") == "misses_the_scene"
    assert judge("The forge is hot today, lad.", scene, "talk") == ""
    assert judge("As an AI I see a slime here.", scene, "scene") == "breaks_character"
    assert judge("(looks around) a slime in the snow.", scene, "scene") == "stage_direction"
    assert trim_to_sentence("A slime. Over there by the") == "A slime."


def test_metrics_on_hand_written_replies():
    present = ["slime", "snow", "coin"]
    assert is_grounded("Mind the slime, lass.", present)
    assert not is_grounded("Lovely weather for the forge.", present)
    assert is_hallucinating("A slime and a zombie!", present)
    assert not is_hallucinating("A slime and some coins.", present)
    assert distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)
    assert repeats_itself("the slime is here and the slime is there")
    assert not repeats_itself("the slime is here and a coin is there")
    replies = np.array([[1.0, 0.1], [0.0, 1.0], [0.9, 0.2]])
    personas = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert persona_predictions(replies, personas).tolist() == [0, 1, 0]


def test_data_scenes_cli_writes_pictures_and_labels(tmp_path):
    from npc_sdk.cli import main

    assert main(["data", "scenes", "--n", "3", "--heldout", "2", "--out", str(tmp_path), "--seed", "5"]) == 0
    train = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert len(train) == 3 and all((tmp_path / "images" / r["file"]).is_file() for r in train)
    assert len((tmp_path / "heldout.jsonl").read_text().splitlines()) == 2
    assert all(r["categories"] and r["objects"] for r in train)


@pytest.mark.slow
def test_twenty_training_steps_lower_the_loss_and_resume_from_a_checkpoint(model, tmp_path):
    import copy

    from npc_export.dialogue_data import training_personas
    from npc_export.scenes import write_split
    from npc_export.train import TrainConfig, train

    write_split(tmp_path, 4, "train", seed=9, log=lambda _m: None)
    from npc_export.scenes import read_split

    scenes = read_split(tmp_path, "train")
    personas = training_personas()[:2]
    items = [
        DialogueItem(
            personas[k % 2].id,
            s.file,
            "What's that over there?",
            "scene",
            f"I see {' and '.join(s.object_categories)} on the {s.terrain}, friend.",
        )
        for k, s in enumerate(scenes)
    ]
    saved = copy.deepcopy(model.fusion.state_dict())
    try:
        cfg = TrainConfig(steps=10, batch=2, lr=3e-3, warmup=2, tag_warmup=20, checkpoint_every=5)
        first = train(
            model, scenes, tmp_path / "images", items, personas, tmp_path / "run", cfg, log=lambda _m: None
        )
        assert first["steps_done"] == 10 and (tmp_path / "run" / "checkpoint.pt").is_file()
        cfg.steps = 20
        second = train(
            model,
            scenes,
            tmp_path / "images",
            items,
            personas,
            tmp_path / "run",
            cfg,
            resume=True,
            log=lambda _m: None,
        )
        losses = second["reply_loss"]
        assert second["steps_done"] == 20 and losses[:10] == first["reply_loss"]
        assert np.mean(losses[-5:]) < 0.95 * np.mean(losses[:5])
        assert (tmp_path / "run" / "fusion.safetensors").is_file()
        assert (tmp_path / "run" / "loss_curve.png").stat().st_size > 1000
    finally:
        model.fusion.load_state_dict(saved)
        model.fusion.eval()


def test_lora_adapters_merge_into_the_weights_they_were_trained_on(tmp_path):
    import torch
    from npc_export.lora import add_lora, merge_lora_file, remove_lora, save_lora
    from torch import nn

    class Attn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q_proj, self.v_proj, self.other = nn.Linear(8, 8), nn.Linear(8, 4), nn.Linear(8, 8)

    torch.manual_seed(0)
    model = nn.Sequential(Attn(), Attn())
    base = {k: v.clone() for k, v in model.state_dict().items()}
    params = add_lora(model, rank=2, alpha=4.0)
    assert len(params) == 8  # A and B for q_proj and v_proj of both layers, nothing else
    with torch.no_grad():
        for p in params:
            p.normal_()
    x = torch.randn(3, 8)
    wrapped = [m.q_proj(x) for m in model] + [m.v_proj(x) for m in model]
    save_lora(model, tmp_path / "lora.safetensors")
    remove_lora(model, merge=False)
    assert all(torch.equal(v, base[k]) for k, v in model.state_dict().items())  # unwrapped, untouched
    assert merge_lora_file(model, tmp_path / "lora.safetensors") == 4
    merged = [m.q_proj(x) for m in model] + [m.v_proj(x) for m in model]
    for a, b in zip(wrapped, merged, strict=True):
        assert torch.allclose(a, b, atol=2e-2)  # float16 on disk
    assert torch.equal(model[0].other.weight, base["0.other.weight"])


def test_train_without_a_dataset_says_what_to_run(tmp_path, capsys):
    from npc_sdk.cli import main

    assert main(["train", "--data", str(tmp_path)]) == 2
    assert "npc-sdk data scenes" in capsys.readouterr().err
