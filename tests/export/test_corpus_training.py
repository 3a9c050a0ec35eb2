"""Training on the authored corpus: each item is rendered exactly as the runtime renders that turn, and a short
real run on a few items lowers their loss."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from npc_export.data.corpus import CORPUS, CorpusItem, Entity, personas_of
from npc_export.train.corpus_train import build_corpus_examples, train_corpus
from npc_export.train.train import TrainConfig

from npc_sdk.personas.prompt import Turn, build_prompt, turn_context
from npc_sdk.runtime.scene import SceneEntity, merge

pytestmark = pytest.mark.slow

ITEM = CorpusItem(
    id="t-1",
    persona="brakka",
    kind="memory",
    line="It's dusk. Is my sword ready?",
    reply="Ready and keener than when you bought it. Ten silver, as agreed.",
    history=(("Can you fix my sword?", "Leave it on the anvil. Ten silver, back by dusk."),),
    entities=(Entity("ferryman", "Old Tom", 0.2),),
)


def _flat(segments) -> list[int]:
    """Token ids, with -1 where prefix vectors go."""
    out: list[int] = []
    for seg in segments:
        out += [-1] if not isinstance(seg, list) else seg
    return out


def test_a_training_row_is_the_runtimes_prompt_for_that_turn(model):
    personas = personas_of(CORPUS)
    (example,) = build_corpus_examples(model, [ITEM], personas, {}, 48)
    tok, fmt, persona = model.decoder.tokenizer, model.decoder.chat_format, personas["brakka"]
    # the runtime's own rendering: history turns keep their context; the note lists the game's entity
    user, reply = ITEM.history[0]
    history = [Turn(user, reply, np.zeros((8, 1)), turn_context(tok, persona, [], user))]
    note = merge(None, model.tags, [SceneEntity("ferryman", "Old Tom", 0.2)]).note()
    context = turn_context(tok, persona, history, ITEM.line) + note
    prompt = build_prompt(tok, persona, history, ITEM.line, np.zeros((8, 1)), context, fmt=fmt)
    runtime = _flat(prompt.segments)
    ours = _flat(example.segments)
    # the persona block is the shared KV state in training: the rest of the row is the runtime's, token for token
    assert runtime[len(runtime) - len(ours) :] == ours
    assert runtime.count(-1) == ours.count(-1) == 2
    assert example.prefixes == [(user, None), (ITEM.line, None)]
    assert tok.decode(example.target[:-1]) == ITEM.reply and example.target[-1] == model.decoder.eos_id
    assert "Old Tom" in tok.decode(example.segments[-1])


def test_a_short_run_on_corpus_items_lowers_their_loss(model, tmp_path):
    personas = personas_of(CORPUS)
    items = [
        ITEM,
        CorpusItem(
            "t-2", "brakka", "scene", "Anything worth grabbing?", "That gem, lass.", in_view=("gem", "grass")
        ),
        CorpusItem("t-3", "brakka", "identity", "Who are you?", "Brakka. I run the forge."),
        CorpusItem(
            "t-4", "brakka", "services", "How much for a dagger?", "Six silver, and it'll outlive you."
        ),
    ]
    saved = copy.deepcopy(model.fusion.state_dict())
    try:
        cfg = TrainConfig(
            steps=12, batch=4, lr=3e-3, lora_lr=3e-3, warmup=2, checkpoint_every=50, lora_rank=2
        )
        summary = train_corpus(model, items, personas, tmp_path / "run", cfg, log=lambda _m: None)
        losses = summary["reply_loss"]
        assert summary["finished"] and summary["pictures"] == 1
        assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
        lora = tmp_path / "run" / "decoder_lora.safetensors"
        assert lora.is_file()
        # a run stopped on purpose ends where its checkpoint is: `--resume --steps N`, no step taken, no encoding
        lora.unlink()
        again = train_corpus(model, items, personas, tmp_path / "run", cfg, resume=True, log=lambda _m: None)
        assert again["finished"] and again["steps_done"] == 12 and again["reply_loss"] == losses
        assert lora.is_file()
    finally:
        model.fusion.load_state_dict(saved)
        model.fusion.eval()
