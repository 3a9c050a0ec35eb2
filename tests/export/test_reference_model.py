"""The PyTorch reference on the real pretrained weights (slow: loads ~300 MB of weights once per session)."""

from __future__ import annotations

import copy
import dataclasses
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from npc_sdk.cache import cache_dir
from npc_sdk.demo import DEMO_PERSONA, scene_path
from npc_sdk.errors import InvalidInputError
from npc_sdk.personas.persona import Persona
from npc_sdk.personas.prompt import Turn, build_prompt
from npc_sdk.runtime.generation import GenerationConfig

pytestmark = pytest.mark.slow

# no sentence limit: the plain LM it is compared with is not cut after one sentence
GREEDY = GenerationConfig(temperature=0.0, repetition_penalty=1.0, max_tokens=40, max_sentences=0)
SCENE = scene_path("meadow_slimes.png")


def _photo(name: str) -> Image.Image:
    """Real photographs from the scikit-image wheel (fetched, never installed) to check the ImageNet weights."""
    folder = cache_dir() / "testdata"
    folder.mkdir(exist_ok=True)
    wheels = list(folder.glob("scikit_image-*.whl"))
    if not wheels:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--only-binary",
                ":all:",
                "-d",
                str(folder),
                "scikit-image==0.26.0",
            ],
            check=True,
        )
        wheels = list(folder.glob("scikit_image-*.whl"))
    with zipfile.ZipFile(wheels[0]) as whl:
        return Image.open(io.BytesIO(whl.read(f"skimage/data/{name}"))).convert("RGB")


def test_image_encoder_weights_recognise_imagenet_photos(model):
    from npc_sdk.runtime.images import PIXEL_MEAN, PIXEL_STD

    def preprocess(photo: Image.Image) -> np.ndarray:
        # ImageNet's own framing (224x224, the photo filling it), normalised as the runtime normalises: the
        # classifier is checked on what it was trained on, not on the NPC's letterbox
        pixels = (
            np.asarray(photo.convert("RGB").resize((224, 224)), dtype=np.float32) - PIXEL_MEAN
        ) / PIXEL_STD
        return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])

    with torch.inference_mode():
        cat = model.image_encoder.classify(torch.from_numpy(preprocess(_photo("chelsea.png"))))[0]
        coffee = model.image_encoder.classify(torch.from_numpy(preprocess(_photo("coffee.png"))))[0]
    assert set(cat.topk(3).indices.tolist()) <= {
        281,
        282,
        283,
        284,
        285,
    }  # tabby, tiger, Persian, Siamese, Egyptian
    assert int(coffee.argmax()) == 967  # espresso
    assert float(coffee.softmax(-1).max()) > 0.5


def test_shapes_and_dtypes_of_v_I_v_T_v_R_and_prefix(model):
    v_I, v_mid = model.encode_image(SCENE)
    assert v_I.shape == (1, 112, 1280) and v_I.dtype == torch.float32  # 8x14 cells of the 448x256 letterbox
    assert v_mid.shape == (1, 448, 112) and v_mid.dtype == torch.float32  # 16x28 cells, stage 5
    assert float(v_I.min()) >= 0.0 and float(v_I.max()) <= 6.0  # ReLU6 grid
    v_T, mask = model.encode_text("What is that slime doing?")
    assert v_T.shape[0] == 1 and v_T.shape[2] == 384 and v_T.shape[1] == mask.shape[1] == int(mask.sum())
    v_R = model.encode_role(DEMO_PERSONA)
    assert v_R.shape == (1, 384) and v_R.dtype == torch.float32
    assert float(v_R.norm()) == pytest.approx(1.0, abs=1e-5)
    prefix, tag_probs = model.see("What is that slime doing?", DEMO_PERSONA, SCENE)
    assert (
        prefix.shape == (model.fusion.cfg.prefix_positions, model.decoder.hidden_size)
        and prefix.dtype == np.float32
    )
    assert tag_probs.shape == (len(model.tags),) and 0.0 <= tag_probs.min() and tag_probs.max() <= 1.0
    assert model.see("What is that slime doing?", DEMO_PERSONA, None)[1] is None  # no picture, no tags


def test_untrained_fusion_is_gated_to_zero(model):
    from npc_export.model.reference import load_fusion

    untrained, info = load_fusion(model.decoder, None, committed_weights=False)
    assert not info.trained and "untrained" in info.describe()
    original, model.fusion = model.fusion, untrained
    try:
        assert not np.any(model.fuse("Look at that!", DEMO_PERSONA, SCENE))
    finally:
        model.fusion = original


def test_the_committed_fusion_is_trained_and_sees_what_is_in_the_demo_scenes(model):
    assert model.fusion_info.trained and model.fusion_info.source.endswith("fusion.safetensors")
    meadow = model.fusion.present_tags(*model.encode_image(SCENE))[0]
    cave = model.fusion.present_tags(*model.encode_image(scene_path("lava_cave_key.png")))[0]
    # meadow_slimes.png: grass, slimes, a gem, a bush, a sign; lava_cave_key.png: stone, lava, a key, a door, torches
    print(f"\nmeadow: {meadow}\ncave: {cave}")
    assert {"grass", "slime"} <= set(meadow) and "lava" not in meadow
    # the key beside the door is missed (small things are the head's weak spot: docs/training.md)
    assert {"lava", "door", "torch"} <= set(cave) and "grass" not in cave
    a = model.fuse("What is over there?", DEMO_PERSONA, SCENE)
    b = model.fuse("What is over there?", DEMO_PERSONA, scene_path("lava_cave_key.png"))
    # the prefix moves with the screenshot, if very little (~0.0003 for the corpus-trained fusion, ~0.004 before):
    # what the NPC saw reaches the decoder as the head's tags (the scene note and the scene-word bias), which the
    # lines above check; docs/training.md reports that the prefix does not earn its place yet
    assert np.abs(a - b).max() > 1e-4


def test_opened_gate_makes_the_prefix_depend_on_image_text_and_role(model):
    fusion = copy.deepcopy(model.fusion)
    with torch.no_grad():
        fusion.gate.fill_(1.0)
    original, model.fusion = model.fusion, fusion
    try:
        meadow = model.fuse("What is over there?", DEMO_PERSONA, SCENE)
        cave = model.fuse("What is over there?", DEMO_PERSONA, scene_path("lava_cave_key.png"))
        blind = model.fuse("What is over there?", DEMO_PERSONA, None)
        other_role = model.fuse(
            "What is over there?", Persona(name="Pip", description="A cheerful pirate."), SCENE
        )
    finally:
        model.fusion = original
    for other in (cave, blind, other_role):  # measured: 0.0003, 0.003, 0.0006 with the corpus-trained weights
        assert np.abs(meadow - other).max() > 1e-4
    rms = float(np.sqrt((meadow**2).mean(-1)).mean())
    assert rms == pytest.approx(np.tanh(1.0) * model.fusion.cfg.embed_rms, rel=0.05)


def test_prefix_off_reproduces_the_plain_lm_token_for_token(model):
    from npc_export.model.decoder import converted_dir
    from transformers import AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(str(converted_dir()))
    brakka = dataclasses.replace(DEMO_PERSONA, lore=[])  # the plain LM is told no lore
    history = [Turn("Good morning.", "Morning. State your business.")]
    text = "Hello! Can you fix my sword? I see a dragon flying over the forge."
    messages = [
        {"role": "system", "content": brakka.system_prompt()},
        {"role": "assistant", "content": brakka.greeting},
        {"role": "user", "content": history[0].user},
        {"role": "assistant", "content": history[0].reply},
        {"role": "user", "content": text},
    ]
    chat = hf_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    hf_ids = hf_tok(chat, return_tensors="pt", add_special_tokens=False).input_ids
    ours = build_prompt(model.decoder.tokenizer, brakka, history, text)
    assert ours.token_ids == hf_ids[0].tolist()

    with torch.inference_mode():
        plain = model.decoder.lm.generate(hf_ids, max_new_tokens=GREEDY.max_tokens, do_sample=False)
    plain_new = plain[0, hf_ids.shape[1] :].tolist()
    plain_lm = GREEDY.with_(
        role_word_scale=0.0, no_repeat_ngram=0
    )  # the plain LM: no role words, no blocking
    done = model.reply(text, persona=brakka, history=history, config=plain_lm, use_prefix=False)
    assert list(done.token_ids) == plain_new
    assert len(done.token_ids) >= 5 and done.text  # a reply, not an immediate end


def test_fixed_seed_reproduces_a_sampled_reply(model):
    cfg = GenerationConfig(temperature=0.9, seed=1234, max_tokens=24)
    a = model.reply("Tell me a rumour.", persona=DEMO_PERSONA, config=cfg)
    b = model.reply("Tell me a rumour.", persona=DEMO_PERSONA, config=cfg)
    c = model.reply("Tell me a rumour.", persona=DEMO_PERSONA, config=cfg.with_(seed=4321))
    assert a.token_ids == b.token_ids and a.text == b.text
    assert a.token_ids != c.token_ids


def test_stream_deltas_concatenate_to_the_reply_and_stop_strings_hold(model):
    events = list(model.stream("Hello there!", persona=DEMO_PERSONA, screenshot=SCENE, config=GREEDY))
    *deltas, done = events
    assert done.type == "done" and all(d.type == "delta" for d in deltas)
    assert "".join(d.text for d in deltas) == done.text == deltas[-1].snapshot
    assert done.usage.completion_tokens == len(done.token_ids)
    assert done.timings.ttft_ms > 0
    words = done.text.split()
    if len(words) >= 3:
        stop = " " + words[2]
        cut = model.reply(
            "Hello there!", persona=DEMO_PERSONA, screenshot=SCENE, config=GREEDY.with_(stop=(stop,))
        )
        assert stop not in cut.text and done.text.startswith(cut.text) and cut.finish_reason == "stop"


def test_max_tokens_ends_with_length(model):
    done = model.reply(
        "Tell me everything about your forge.", persona=DEMO_PERSONA, config=GREEDY.with_(max_tokens=3)
    )
    assert done.finish_reason == "length" and done.usage.completion_tokens == 3


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"text": ""}, "text"),
        ({"text": "hi", "screenshot": np.zeros((0, 0, 3), dtype=np.uint8)}, "screenshot"),
        ({"text": "hi", "screenshot": b"GIF89a but not really"}, "screenshot"),
        ({"text": "hi", "screenshot": Path("/nonexistent/shot.png")}, "screenshot"),
    ],
)
def test_bad_inputs_name_the_problem(model, kwargs, field):
    text = kwargs.pop("text")
    with pytest.raises(InvalidInputError) as err:
        model.reply(text, persona=DEMO_PERSONA, **kwargs)
    assert err.value.field == field


def test_the_reference_prepares_its_turn_as_the_runtime_does(model):
    """Game state and actions reach the torch reference's turn too (npc_sdk/runtime/turn.py)."""
    from npc_sdk.personas.files import load_persona
    from npc_sdk.runtime.events import Action, Done
    from npc_sdk.runtime.scene import SceneEntity
    from npc_sdk.runtime.turn_model import TurnModel

    assert isinstance(model, TurnModel)
    ysolde = load_persona(Path(__file__).resolve().parents[2] / "samples" / "personas" / "ysolde.toml")
    line, knight = "Please heal Ser Aldric, he is bleeding!", [SceneEntity("knight", "Ser Aldric")]
    quick = GREEDY.with_(max_tokens=4)
    events = list(
        model.stream(line, persona=ysolde, scene=knight, state={"player_health": "low"}, config=quick)
    )
    assert (
        isinstance(events[0], Action) and events[0].name == "heal" and events[0].args == {"patient": "knight"}
    )
    assert isinstance(events[-1], Done)
    plain = list(model.stream(line, persona=ysolde, scene=knight, config=quick))
    assert not any(isinstance(e, Action) for e in plain)  # no state: the action's condition cannot hold
    best = model.reply(
        "Hello!", persona=DEMO_PERSONA, config=quick.with_(temperature=0.9, seed=1, candidates=2)
    )
    assert len(best.candidates) == 2 and best.candidates[0].text == best.text
