"""Preference training (DPO): pairs read from an eval's records and from labelled replies, a short real run that
learns to prefer the written replies, and the adapter file that stacks the committed adapters with the new ones."""

from __future__ import annotations

import json

import pytest
import torch
from npc_export.data.corpus import CORPUS, CorpusItem, personas_of
from npc_export.model.lora import add_lora, merge_lora_file, save_lora
from npc_export.model.reference import DEFAULT_DECODER_LORA
from npc_export.train.corpus_train import CorpusFeatures
from npc_export.train.preference import (
    PreferenceConfig,
    build_pairs,
    dpo_loss,
    read_preferences,
    read_rejected,
    stack_adapters,
    train_preference,
)
from safetensors import safe_open

ITEMS = [
    CorpusItem("p-1", "brakka", "identity", "Who are you?", "Brakka. I run the forge."),
    CorpusItem("p-2", "brakka", "services", "How much for a dagger?", "Six silver, and it'll outlive you."),
    CorpusItem(
        "p-3", "brakka", "small_talk", "Nice weather today.", "Hot enough at the anvil. I hadn't noticed."
    ),
    CorpusItem("p-4", "brakka", "refusal", "Give me a sword for free.", "Free? Coin first, then steel."),
]
OWN = {  # what a 135M decoder says to such lines: the habits the pairs push it away from
    "p-1": "I'm the forge of Brakka, the blacksmith's hammer.",
    "p-2": "A dagger is a dagger, the dagger of the forge.",
    "p-3": "The weather is the anvil's weather, lad.",
    "p-4": "I'd be the first to give it.",
}
WRITTEN_OVER_OWN = {item_id: [(None, reply)] for item_id, reply in OWN.items()}


def test_rejected_replies_are_read_from_eval_records(tmp_path):
    records = tmp_path / "r.jsonl"
    rows = [
        {"id": "p-1", "reply": "I'm the forge."},
        {"id": "p-2", "reply": "Six silver, and it'll outlive you."},  # the written reply: no pair
        {"id": "p-3", "reply": "  "},  # empty: no pair
        {"id": "gone", "reply": "Whatever."},  # not a training item any more
    ]
    records.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert read_rejected(records, ITEMS) == {"p-1": "I'm the forge."}
    records.write_text(json.dumps({"reply": "no id"}) + "\n")
    with pytest.raises(ValueError, match=r"r.jsonl:1: id, reply"):
        read_rejected(records, ITEMS)
    records.write_text(json.dumps({"id": "p-1", "reply": "fine"}) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"r.jsonl:2: not a JSON object"):
        read_rejected(records, ITEMS)
    with pytest.raises(ValueError, match=r"missing.jsonl: cannot read the eval records"):
        read_rejected(tmp_path / "missing.jsonl", ITEMS)


def test_labelled_replies_pair_the_acceptable_against_the_rest(tmp_path):
    records = tmp_path / "labels.jsonl"
    rows = [
        {"id": "p-1", "reply": "Brakka. Smith of this forge.", "acceptable": True},
        {"id": "p-1", "reply": "I'm the forge of Brakka.", "acceptable": False},
        {"id": "p-1", "reply": "The hammer is my name.", "acceptable": False},
        {"id": "p-1", "reply": "I'm the forge of Brakka.", "acceptable": False},  # read twice: one pair
        {"id": "p-2", "reply": "Six silver.", "acceptable": True},  # nothing to pair it with
        {"id": "p-3", "reply": "Hot at the anvil.", "acceptable": True},
        {"id": "p-3", "reply": "Hot by the forge.", "acceptable": True},
        {"id": "p-3", "reply": "The weather is the anvil.", "acceptable": False},
        {"id": "gone", "reply": "Fine.", "acceptable": True},
        {"id": "gone", "reply": "Fine fine.", "acceptable": False},
        {"id": "p-4", "reply": "I'd be the first to give it."},  # an eval record: the written reply wins
    ]
    records.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert read_preferences(records, ITEMS) == {
        "p-1": [
            ("Brakka. Smith of this forge.", "I'm the forge of Brakka."),
            ("Brakka. Smith of this forge.", "The hammer is my name."),
        ],
        "p-3": [
            ("Hot at the anvil.", "The weather is the anvil."),
            ("Hot by the forge.", "The weather is the anvil."),
        ],
        "p-4": [(None, "I'd be the first to give it.")],
    }
    # a folder: every .jsonl in it, as corpus/labels/training_personas/ is read
    folder = tmp_path / "labelled"
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    (folder / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[4:]))
    assert read_preferences(folder, ITEMS) == read_preferences(records, ITEMS)
    # several rounds of reading given apart: one line's labels from both rounds pair with each other
    (tmp_path / "round1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:6]))
    (tmp_path / "round2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[6:]))
    rounds = [tmp_path / "round1.jsonl", tmp_path / "round2.jsonl"]
    assert read_preferences(rounds, ITEMS) == read_preferences(records, ITEMS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: a folder with no .jsonl files"):
        read_preferences(tmp_path / "empty", ITEMS)
    records.write_text(json.dumps({"id": "p-1", "reply": "x", "acceptable": "yes"}) + "\n")
    with pytest.raises(ValueError, match=r"labels.jsonl:1: acceptable: must be true or false"):
        read_preferences(records, ITEMS)


@pytest.mark.slow
def test_pairs_of_labelled_replies_train_on_the_readers_choice(model):
    personas = {"brakka": personas_of(CORPUS)["brakka"]}
    chosen, rejected = "Brakka. Smith of this forge.", "I'm the forge of Brakka."
    pairs = build_pairs(model, ITEMS, {"p-1": [(chosen, rejected)]}, personas, {}, 48)
    tok = model.decoder.tokenizer
    assert len(pairs) == 1
    assert tok.decode(pairs[0].chosen.target[:-1]) == chosen
    assert tok.decode(pairs[0].rejected.target[:-1]) == rejected
    assert pairs[0].chosen.segments == pairs[0].rejected.segments  # the same turn, rendered once


class _Layer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj = torch.nn.Linear(6, 5, bias=False)
        self.up_proj = torch.nn.Linear(6, 4, bias=False)


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = _Layer()


def test_stacked_adapters_merge_into_the_weights_both_give(tmp_path):
    torch.manual_seed(0)
    lm = _Tiny()
    base = {k: v.clone() for k, v in lm.state_dict().items()}
    first = add_lora(lm, 2, 4.0, ("q_proj", "up_proj"))
    for p in first:
        p.data.normal_()
    save_lora(lm, tmp_path / "first.safetensors")
    # the first adapters merged (as NpcModel.load does), then new ones on top, with another scale
    from npc_export.model.lora import remove_lora

    remove_lora(lm, merge=False)
    merge_lora_file(lm, tmp_path / "first.safetensors")
    second = add_lora(lm, 3, 12.0, ("q_proj", "up_proj"))
    for p in second:
        p.data.normal_()
    expected = {
        n: m.base.weight + m.scale * (m.B @ m.A)
        for n, m in (("q_proj", lm.layer.q_proj), ("up_proj", lm.layer.up_proj))
    }
    rank = stack_adapters(tmp_path / "first.safetensors", lm, tmp_path / "both.safetensors")
    assert rank == 5
    fresh = _Tiny()
    fresh.load_state_dict(base)
    merge_lora_file(fresh, tmp_path / "both.safetensors")
    for name, want in expected.items():
        torch.testing.assert_close(getattr(fresh.layer, name).weight, want.detach(), atol=5e-3, rtol=5e-3)


@pytest.mark.slow
def test_a_short_preference_run_learns_to_prefer_the_written_replies(model, tmp_path):
    personas = personas_of(CORPUS)
    cfg = PreferenceConfig(steps=8, pairs=4, lr=3e-3, warmup=1, rank=2, log_every=100)
    weights_before = model.decoder.lm.model.layers[0].self_attn.q_proj.weight.clone()
    summary = train_preference(
        model,
        ITEMS,
        personas,
        WRITTEN_OVER_OWN,
        DEFAULT_DECODER_LORA,
        tmp_path / "run",
        cfg,
        log=lambda _m: None,
    )
    history = summary["history"]
    with safe_open(str(DEFAULT_DECODER_LORA), framework="pt") as f:
        committed_rank = f.get_tensor(next(k for k in f.keys() if k.endswith(".A"))).shape[0]
    assert summary["finished"] and summary["pairs"] == 4 and summary["rank"] == committed_rank + 2
    # the first step is the reference itself (the new adapters start at zero): no margin yet
    assert abs(history[0]["margin"]) < 1e-3
    assert history[-1]["margin"] > 0.05 and history[-1]["reward_accuracy"] == 1.0
    assert history[-1]["dpo"] < history[0]["dpo"]
    # the caller's model is left as it came: no adapters, the same weights
    assert torch.equal(model.decoder.lm.model.layers[0].self_attn.q_proj.weight, weights_before)
    assert (tmp_path / "run" / "decoder_lora.safetensors").is_file()
    # and with no training at all the stacked file is the committed adapters plus zeros: the same model
    feats = CorpusFeatures(
        model, {"brakka": personas["brakka"]}, {i.line for i in ITEMS}, {}, log=lambda _m: None
    )
    pairs = build_pairs(model, ITEMS, WRITTEN_OVER_OWN, {"brakka": personas["brakka"]}, {}, 48)
    with torch.no_grad():
        _loss, stats = dpo_loss(model, feats, pairs, cfg)
    assert stats["margin"] == 0.0
