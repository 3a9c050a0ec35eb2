"""The dialogue filter, the metrics, a short real training run of both stages, and a studio's own dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from npc_export.data.dialogue_data import DialogueItem, judge, trim_to_sentence
from npc_export.data.scene_lexicon import mentioned_categories, repeats_itself
from npc_export.eval.metrics import (
    distinct_n,
    is_grounded,
    is_hallucinating,
    names_a_thing_present,
    persona_predictions,
)
from npc_export.model.vocabulary import TAG_WORDS


def test_the_lexicon_finds_whole_words_in_any_case():
    assert mentioned_categories("Two SLIMES by the crate, and a key!") == {"slime", "box", "key"}
    assert mentioned_categories("A monkey in the keyhole") == set()  # no substrings
    assert all(len(w.split()) == 1 for w in TAG_WORDS)


def test_the_teacher_filter_keeps_grounded_in_character_replies():
    present = ["slime", "snow", "night"]
    assert judge("Watch that slime on the snow, lad.", present, "scene") == ""
    assert judge("Watch that bee, lad, it stings hard.", present, "scene") == "names_absent_thing"
    assert judge("The forge is hot today, lad.", present, "scene") == "misses_the_scene"
    assert judge("The forge is hot today, lad.", present, "talk") == ""
    assert judge("As an AI I see a slime here.", present, "scene") == "breaks_character"
    assert judge("(looks around) a slime in the snow.", present, "scene") == "stage_direction"
    assert judge("The slime is here and the slime is there.", present, "scene") == "repeats_itself"
    assert trim_to_sentence("A slime. Over there by the") == "A slime."


def test_metrics_on_hand_written_replies():
    present = ["slime", "snow", "coin"]
    assert is_grounded("Mind the slime, lass.", present)
    assert not is_grounded("Lovely weather for the forge.", present)
    assert is_grounded("Snow everywhere.", present) and not names_a_thing_present("Snow everywhere.", present)
    assert names_a_thing_present("Coins in the snow!", present)
    assert is_hallucinating("A slime and a zombie!", present)
    assert not is_hallucinating("A slime and some coins.", present)
    assert distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)
    assert repeats_itself("the slime is here and the slime is there")
    assert not repeats_itself("the slime is here and a coin is there")
    replies = np.array([[1.0, 0.1], [0.0, 1.0], [0.9, 0.2]])
    personas = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert persona_predictions(replies, personas).tolist() == [0, 1, 0]


@pytest.fixture(scope="module")
def tiny_scenes(tmp_path_factory):
    from npc_export.data.datasets import Dataset, write_builtin_meta
    from npc_export.data.splits import write_split

    folder = tmp_path_factory.mktemp("scenes")
    write_split(folder, 6, "train", seed=9, log=lambda _m: None)
    write_split(folder, 3, "val", seed=9, log=lambda _m: None)
    write_builtin_meta(folder)
    return Dataset.open(folder)


@pytest.mark.slow
def test_training_steps_lower_the_loss_and_resume_from_a_checkpoint(model, tiny_scenes, tmp_path):
    import copy

    from npc_export.data.dialogue_data import training_personas
    from npc_export.train.grounding import HeadConfig
    from npc_export.train.train import TrainConfig, train

    pictures = tiny_scenes.split("train")
    personas = training_personas()[:2]
    items = [
        DialogueItem(
            personas[k % 2].id,
            p.image.name,
            "What's that over there?",
            "scene",
            f"I see {' and '.join(p.tags[:2])} out there, friend.",
        )
        for k, p in enumerate(pictures)
    ]
    saved = copy.deepcopy(model.fusion.state_dict())
    try:
        cfg = TrainConfig(
            steps=10,
            batch=2,
            lr=3e-3,
            warmup=2,
            checkpoint_every=5,
            lora_rank=2,
            head=HeadConfig(steps=30, batch=4),
        )
        first = train(model, tiny_scenes, items, personas, tmp_path / "run", cfg, log=lambda _m: None)
        assert first["dialogue"]["steps_done"] == 10 and (tmp_path / "run" / "checkpoint.pt").is_file()
        assert (tmp_path / "run" / "head_report.md").is_file()
        cfg.steps = 20
        second = train(
            model, tiny_scenes, items, personas, tmp_path / "run", cfg, resume=True, log=lambda _m: None
        )
        losses = second["dialogue"]["reply_loss"]
        assert second["dialogue"]["steps_done"] == 20 and losses[:10] == first["dialogue"]["reply_loss"]
        assert np.mean(losses[-5:]) < 0.95 * np.mean(losses[:5])
        for name in ("fusion.safetensors", "decoder_lora.safetensors", "loss_curve.png"):
            assert (tmp_path / "run" / name).is_file()
        from npc_export.model.reference import read_fusion_file

        _, tags, _ = read_fusion_file(tmp_path / "run" / "fusion.safetensors")
        assert [t.name for t in tags] == list(
            tiny_scenes.tag_names
        )  # the vocabulary travels with the weights
    finally:
        model.fusion.load_state_dict(saved)
        model.fusion.eval()


@pytest.mark.slow
def test_a_studio_dataset_with_its_own_tags_trains_a_head_that_names_them(tmp_path):
    """Pictures an engine could write (coloured shapes here) with tags of the studio's own: a few hundred steps
    of the head, and it names them on pictures it never saw."""
    from npc_export.data.datasets import Dataset
    from npc_export.model.reference import NpcModel
    from npc_export.train.grounding import HeadConfig
    from npc_export.train.train import train_grounding
    from PIL import Image, ImageDraw

    vocab = {"lantern": ("lantern", "lanterns"), "banner": ("banner",), "well": ("well", "wells")}
    (tmp_path / "images").mkdir()
    rng = np.random.default_rng(0)

    def picture(name: str) -> list[str]:
        w, h = int(rng.integers(320, 640)), int(rng.integers(240, 360))
        img = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(60, 200, 3)))
        d = ImageDraw.Draw(img)
        tags = [t for t in vocab if rng.random() < 0.5] or ["well"]
        for t in tags:
            s = int(rng.integers(h // 6, h // 3))
            x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
            if t == "lantern":
                d.ellipse((x, y, x + s, y + s), fill=(255, 220, 40))
            elif t == "banner":
                d.rectangle((x, y, x + s // 2, y + s), fill=(200, 20, 30))
            else:
                d.polygon([(x, y + s), (x + s, y + s), (x + s // 2, y)], fill=(20, 60, 220))
        img.save(tmp_path / "images" / name)
        return tags

    for split, n in (("train", 60), ("val", 20), ("test", 20)):
        lines = [
            json.dumps({"file": f"{split}{i}.png", "tags": picture(f"{split}{i}.png")}) for i in range(n)
        ]
        (tmp_path / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    meta = {"tags": {t: {"words": list(w)} for t, w in vocab.items()}}
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    dataset = Dataset.open(tmp_path)
    model = NpcModel.load(committed_weights=False, vocabulary=dataset.vocabulary, log=lambda _m: None)
    assert model.fusion.cfg.tag_words == ("lantern", "banner", "well")
    report = train_grounding(
        model, dataset, tmp_path / "run", HeadConfig(steps=300, batch=16), log=lambda _m: None
    )
    test = report["metrics"]["test"]
    print(
        f"\ncustom vocabulary, test pictures: precision {test['macro_precision']}, recall {test['macro_recall']}"
    )
    assert test["macro_precision"] >= 0.8 and test["macro_recall"] >= 0.8
    assert {t.name for t in model.tags} == set(vocab) and all(0 < t.threshold < 1 for t in model.tags)


def test_lora_adapters_merge_into_the_weights_they_were_trained_on(tmp_path):
    import torch
    from npc_export.model.lora import add_lora, merge_lora_file, remove_lora, save_lora
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
