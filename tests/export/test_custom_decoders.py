"""Bring your own decoder: tiny random Llama and Qwen2 checkpoints (and a GGUF) exported, checked against
transformers, served through the same runtime; chat formats from the models' own templates; fusion binding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from npc_sdk.errors import DecoderError, WeightsError
from npc_sdk.personas.chat_format import CHATML
from npc_sdk.personas.persona import Persona

from .tiny_decoders import LLAMA3_SPECIALS, QWEN2_SPECIALS, make_tokenizer, tiny_llama, tiny_qwen2, write_gguf

GREEDY_TOKENS = 32
LOGITS_ATOL = 1e-3
SMITH = Persona(name="Brakka", description="A gruff dwarven blacksmith.", greeting="Hmph. What do you want?")
LINE = "Can you fix my sword? I see a dragon flying over the forge."


def _tokenizer_folder(
    folder: Path, specials: list[str], template: str | None, eos: str, bos: str = ""
) -> Path:
    folder.mkdir(parents=True)
    make_tokenizer(specials).save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": eos}
    if bos:
        config["bos_token"] = bos
    if template:
        config["chat_template"] = template
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def _format(folder: Path):
    from npc_export.model.chat_template import chat_format_from_tokenizer
    from transformers import PretrainedConfig

    return chat_format_from_tokenizer(folder, PretrainedConfig())


def test_chat_formats_come_from_each_models_own_template(tmp_path):
    from .tiny_decoders import LLAMA3_TEMPLATE, QWEN2_TEMPLATE

    qwen = _format(_tokenizer_folder(tmp_path / "qwen", QWEN2_SPECIALS, QWEN2_TEMPLATE, "<|im_end|>"))
    assert qwen == CHATML  # the system message we always send replaces Qwen's default one
    llama = _format(
        _tokenizer_folder(
            tmp_path / "llama", LLAMA3_SPECIALS, LLAMA3_TEMPLATE, "<|eot_id|>", "<|begin_of_text|>"
        )
    )
    header = "<|start_header_id|>{}<|end_header_id|>\n\n"
    assert llama.system_start == "<|begin_of_text|>" + header.format("system")
    assert (
        llama.system_end == "<|eot_id|>"
        and llama.assistant_end == "<|eot_id|>"
        and llama.stop == "<|eot_id|>"
    )
    assert llama.user_start == header.format("user")
    assert llama.reply_start == "<|eot_id|>" + header.format("assistant") == llama.generation
    assert llama.assistant_start == header.format("assistant")
    zephyr = (
        "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
    )
    tiny = _format(_tokenizer_folder(tmp_path / "zephyr", ["</s>", "<s>"], zephyr, "</s>"))
    assert (tiny.system_start, tiny.user_start, tiny.generation, tiny.assistant_end) == (
        "<|system|>\n",
        "<|user|>\n",
        "</s>\n<|assistant|>\n",
        "</s>\n",
    )


def test_templates_that_cannot_carry_a_persona_are_refused_by_name(tmp_path):
    # Llama 2's layout: the system text goes inside the first [INST] block, so no user header follows it
    llama2 = (
        "{% set system = messages[0]['content'] %}{% for message in messages[1:] %}"
        "{% if message['role'] == 'user' %}{% set content = message['content'] %}"
        "{% if loop.first %}{% set content = '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + content %}{% endif %}"
        "{{ bos_token + '[INST] ' + content + ' [/INST]' }}{% else %}{{ ' ' + message['content'] + ' ' + eos_token }}"
        "{% endif %}{% endfor %}"
    )
    folder = _tokenizer_folder(tmp_path / "llama2", ["<s>", "</s>"], llama2, "</s>", "<s>")
    with pytest.raises(DecoderError, match="user header differs"):
        _format(folder)
    no_roles = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}"
        "{% endfor %}"
    )
    with pytest.raises(DecoderError, match="system message"):
        _format(_tokenizer_folder(tmp_path / "nosys", ["</s>"], no_roles, "</s>"))
    with pytest.raises(DecoderError, match="no chat_template"):
        _format(_tokenizer_folder(tmp_path / "base", ["</s>"], None, "</s>"))


def test_an_unsupported_architecture_is_a_clear_error_naming_what_is_missing(tmp_path):
    from npc_export.model.decoder import resolve_decoder

    folder = _tokenizer_folder(tmp_path / "gemma", ["</s>"], None, "</s>")
    (folder / "model.safetensors").write_bytes(b"")
    (folder / "config.json").write_text(
        json.dumps(
            {
                "model_type": "gemma2",
                "hidden_act": "gelu_pytorch_tanh",
                "rope_scaling": {"rope_type": "yarn", "factor": 4.0},
                "use_sliding_window": True,
            }
        )
    )
    with pytest.raises(DecoderError) as err:
        resolve_decoder(folder)
    message = str(err.value)
    for named in ("gemma2", "hidden_act", "yarn", "sliding-window", str(folder)):
        assert named in message
    (folder / "model.safetensors").unlink()
    with pytest.raises(DecoderError, match=r"missing \*\.safetensors"):
        resolve_decoder(folder)
    with pytest.raises(DecoderError, match="no such file"):
        resolve_decoder(tmp_path / "nowhere")


# ---- exports of the tiny checkpoints (slow: the encoders are exported too) ---------------------------------


def _transformers_greedy(folder: Path, ids: list[int], n: int) -> tuple[np.ndarray, list[int], float]:
    """transformers' own forward: last-position logits of `ids`, `n` greedy tokens, and the smallest gap between
    the top two logits along the way (how near a tie the greedy choices came)."""
    import torch
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    seq, out, gap, first = list(ids), [], np.inf, None
    with torch.inference_mode():
        for _ in range(n):
            logits = lm(torch.tensor([seq])).logits[0, -1].numpy()
            first = logits if first is None else first
            top2 = np.sort(logits)[-2:]
            gap = min(gap, float(top2[1] - top2[0]))
            out.append(int(np.argmax(logits)))
            seq.append(out[-1])
    return first, out, gap


def _export(decoder: Path, out: Path, precision: str) -> Path:
    from npc_export.build.onnx_export import export_model

    return export_model(out, precision, decoder=decoder, log=lambda _m: None)


def _check_against_transformers(folder: Path, reference_folder: Path) -> None:
    from npc_sdk.personas.prompt import build_prompt
    from npc_sdk.runtime.onnx_model import OnnxNpcModel, SlotSource

    runtime = OnnxNpcModel.load(folder, slots=1)
    ids = build_prompt(runtime.tokenizer, SMITH, [], LINE, fmt=runtime.chat_format).token_ids
    want_logits, want_tokens, gap = _transformers_greedy(reference_folder, ids, GREEDY_TOKENS)
    # fp32 export and transformers differ by ~1e-5 here; a top-two gap under 1e-3 could flip on some CPU
    assert gap > LOGITS_ATOL, "the random checkpoint came too near a tie to compare greedy tokens"
    slot = runtime.acquire_slot()
    try:
        embeds = runtime.embed_ids(ids)
        cut = 2 * len(ids) // 3  # a prefill on top of a non-empty past, as a second turn does
        runtime.runner.run(slot, embeds[None, :cut])
        got_logits = runtime.runner.run(slot, embeds[None, cut:])[0]
        diff = float(np.abs(got_logits - want_logits).max())
        print(f"\n{reference_folder.name}: max |logit difference| {diff:.2e}, top-two gap >= {gap:.3f}")
        assert diff < LOGITS_ATOL
        runtime.cache.lengths[slot] = 0
        source, got_tokens = SlotSource(runtime, slot), []
        logits = source.prefill(embeds)
        for _ in range(GREEDY_TOKENS):
            got_tokens.append(int(np.argmax(logits)))
            logits = source.step(got_tokens[-1])
    finally:
        runtime.release_slot(slot)
    assert got_tokens == want_tokens


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_a_tiny_decoder_exports_and_matches_transformers(family, tmp_path):
    make = tiny_llama if family == "llama" else tiny_qwen2
    checkpoint = make(tmp_path / f"tiny-{family}")
    folder = _export(checkpoint, tmp_path / "fp32", "fp32")
    manifest = json.loads((folder / "manifest.json").read_text())
    dec = manifest["decoder"]
    config = json.loads((checkpoint / "config.json").read_text())
    assert dec["family"] == family and dec["source"]["given"] == str(checkpoint)
    assert (dec["hidden"], dec["heads"], dec["kv_heads"], dec["layers"]) == (
        config["hidden_size"],
        config["num_attention_heads"],
        config["num_key_value_heads"],
        config["num_hidden_layers"],
    )
    assert dec["qkv_bias"] == (family == "qwen2") and dec["rope_type"] == (
        "llama3" if family == "llama" else "default"
    )
    from npc_export.model.decoder import folder_fingerprint

    assert dec["source"]["sha256"] == folder_fingerprint(checkpoint) == manifest["fusion"]["decoder_sha256"]
    assert manifest["sources"][0] == {"decoder": str(checkpoint), "sha256": folder_fingerprint(checkpoint)}
    # no fusion was trained for it: the committed grounding head still names what a screenshot shows
    assert manifest["fusion"]["trained"] is False and "grounding head only" in manifest["fusion"]["source"]
    assert {"slime", "coin"} <= {t["name"] for t in manifest["fusion"]["tags"]}
    _check_against_transformers(folder, checkpoint)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_an_int4_export_of_another_decoder_serves_a_dialogue(family, tmp_path):
    from npc_sdk.demo import scene_path
    from npc_sdk.runtime.conversation import Conversation
    from npc_sdk.runtime.generation import GenerationConfig
    from npc_sdk.runtime.onnx_model import OnnxNpcModel

    checkpoint = (tiny_llama if family == "llama" else tiny_qwen2)(tmp_path / f"tiny-{family}")
    folder = _export(checkpoint, tmp_path / "int4", "int4")
    import onnx

    ops = {n.op_type for n in onnx.load(str(folder / "decoder.onnx")).graph.node}
    assert "MatMulNBits" in ops
    runtime = OnnxNpcModel.load(folder, slots=1)
    stop = "<|eot_id|>" if family == "llama" else "<|im_end|>"
    assert runtime.chat_format.stop == stop and runtime.eos_id == runtime.tokenizer.token_to_id(stop)
    assert (runtime.chat_format == CHATML) == (family == "qwen2")
    talk = Conversation(runtime, SMITH)
    cfg = GenerationConfig(max_tokens=12, temperature=0.0)
    shot = scene_path("meadow_slimes.png").read_bytes()
    first = talk.reply(LINE, screenshot=shot, config=cfg)
    second = talk.reply("And the slimes?", config=cfg)
    assert first.usage.completion_tokens > 0 and second.usage.completion_tokens > 0
    assert "slime" in {s.tag for s in first.seen}  # scene facts come from the committed head, any decoder
    # the second turn reused the first's KV state: persona block, first line and reply were not fed again
    assert second.usage.cached_tokens >= first.usage.prompt_tokens
    assert all(t.prefix is None for t in talk.history)  # an untrained projector adds no positions


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_a_gguf_decoder_exports_like_its_folder(family, tmp_path):
    from npc_export.model.decoder import resolve_decoder

    make = tiny_llama if family == "llama" else tiny_qwen2
    checkpoint = make(tmp_path / f"tiny-{family}")
    gguf_file = write_gguf(checkpoint, tmp_path / f"tiny-{family}.gguf")
    source = resolve_decoder(gguf_file, log=lambda _m: None)
    assert source.sha256 and source.folder.is_dir() and not source.is_default
    folder = _export(gguf_file, tmp_path / "gguf-fp32", "fp32")
    fmt = json.loads((folder / "manifest.json").read_text())["decoder"]["chat_format"]
    if family == "llama":
        assert fmt["stop"] == "<|eot_id|>" and fmt["user_start"].startswith("<|start_header_id|>user")
    else:
        assert fmt == CHATML.to_dict()
    _check_against_transformers(folder, source.folder)  # transformers reading the same GGUF


@pytest.mark.slow
def test_fusion_weights_trained_for_another_decoder_are_refused(tmp_path):
    from npc_export.model.reference import DEFAULT_FUSION_WEIGHTS, NpcModel

    checkpoint = tiny_qwen2(tmp_path / "tiny-qwen2")
    with pytest.raises(WeightsError, match="npc-sdk train --decoder"):
        NpcModel.load(decoder=checkpoint, fusion_weights=DEFAULT_FUSION_WEIGHTS, log=lambda _m: None)


@pytest.mark.slow
def test_train_decoder_binds_the_fusion_to_that_decoder(tmp_path):
    """`npc-sdk train --decoder`: the dialogue stage for a tiny Qwen2 starts from the committed grounding head,
    trains a projector of its width, records its sha256; the export then feeds the decoder fusion vectors, and
    another decoder refuses the file."""
    from npc_export.build.onnx_export import export_model
    from npc_export.data.datasets import Dataset, write_builtin_meta
    from npc_export.data.dialogue_data import DialogueItem, training_personas
    from npc_export.data.splits import write_split
    from npc_export.model.decoder import folder_fingerprint
    from npc_export.model.reference import NpcModel, read_fusion_file
    from npc_export.train.train import TrainConfig, train

    from npc_sdk.runtime.conversation import Conversation
    from npc_sdk.runtime.generation import GenerationConfig
    from npc_sdk.runtime.onnx_model import OnnxNpcModel

    scenes = tmp_path / "scenes"
    write_split(scenes, 4, "train", seed=9, log=lambda _m: None)
    write_builtin_meta(scenes)
    dataset = Dataset.open(scenes)
    personas = training_personas()[:2]
    items = [
        DialogueItem(personas[k % 2].id, p.image.name, "What's that?", "scene", f"I see {p.tags[0]} there.")
        for k, p in enumerate(dataset.split("train"))
    ]
    checkpoint = tiny_qwen2(tmp_path / "tiny-qwen2")
    model = NpcModel.load(decoder=checkpoint, vocabulary=dataset.vocabulary, log=lambda _m: None)
    assert not model.fusion_info.trained and model.fusion.cfg.decoder_dim == 64
    cfg = TrainConfig(steps=4, batch=2, lr=3e-3, warmup=1, checkpoint_every=4, lora_rank=0)
    summary = train(
        model, dataset, items, personas, tmp_path / "run", cfg, stages=("dialogue",), log=lambda _m: None
    )
    assert summary["finished"]
    weights = tmp_path / "run" / "fusion.safetensors"
    state, _, trained_for = read_fusion_file(weights)
    assert trained_for == folder_fingerprint(checkpoint) and state["to_decoder.weight"].shape[0] == 64

    trained = NpcModel.load(decoder=checkpoint, fusion_weights=weights, log=lambda _m: None)
    folder = export_model(tmp_path / "int4", "int4", model=trained, log=lambda _m: None)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["fusion"]["trained"] is True
    runtime = OnnxNpcModel.load(folder, slots=1)
    talk = Conversation(runtime, SMITH)
    talk.reply(LINE, config=GenerationConfig(max_tokens=4, temperature=0.0))
    assert talk.history[0].prefix is not None and talk.history[0].prefix.shape == (8, 64)

    other = tiny_llama(tmp_path / "tiny-llama")
    with pytest.raises(WeightsError, match="trained for decoder sha256"):
        NpcModel.load(decoder=other, fusion_weights=weights, log=lambda _m: None)


@pytest.mark.slow
def test_history_stored_under_another_decoder_keeps_its_words_and_drops_its_vectors(runtime_int4):
    """A deployment that switches decoders loads sessions whose turns carry the old decoder's fusion vectors:
    their width no longer fits, so the runtime replays the text alone instead of failing the session."""
    from npc_sdk.personas.prompt import Turn

    width = runtime_int4.hidden_size
    turns = [
        Turn("hello", "Hmph.", np.ones((8, 64), dtype=np.float32)),  # from a 64-wide decoder
        Turn("the sword?", "Aye.", np.ones((8, width), dtype=np.float32)),  # from this one
        Turn("bye", "Go on then.", None),
    ]
    usable = runtime_int4.usable_history(turns)
    assert [(t.user, t.reply) for t in usable] == [(t.user, t.reply) for t in turns]
    assert usable[0].prefix is None and usable[1].prefix is turns[1].prefix and usable[2].prefix is None


@pytest.mark.slow
def test_a_decoder_too_big_for_one_protobuf_keeps_its_weights_beside_the_graph(tmp_path, monkeypatch):
    """Past 2 GiB a graph cannot be one file (about 450M fp32 parameters): the weights go to decoder.onnx.data,
    the manifest lists and hashes it, and the runtime reads it. Shown on a tiny decoder with the bar lowered."""
    from npc_export.build import onnx_export

    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 1)
    checkpoint = tiny_qwen2(tmp_path / "tiny-qwen2")
    folder = _export(checkpoint, tmp_path / "fp32", "fp32")
    files = json.loads((folder / "manifest.json").read_text())["files"]
    assert "decoder.onnx.data" in files and (folder / "decoder.onnx").stat().st_size < 100_000
    _check_against_transformers(folder, checkpoint)


def _prompt_logits(folder: Path) -> np.ndarray:
    from npc_sdk.personas.prompt import build_prompt
    from npc_sdk.runtime.onnx_model import OnnxNpcModel

    runtime = OnnxNpcModel.load(folder, slots=1)
    ids = build_prompt(runtime.tokenizer, SMITH, [], LINE, fmt=runtime.chat_format).token_ids
    slot = runtime.acquire_slot()
    try:
        embeds = runtime.embed_ids(ids)
        runtime.runner.run(slot, embeds[None, :-1])
        # the last position alone is a decode step: decoder.onnx, where the block size is, not the prefill graph
        return runtime.runner.run(slot, embeds[None, -1:])[0]
    finally:
        runtime.release_slot(slot)


@pytest.mark.slow
def test_export_block_size_is_the_decoder_graphs_and_the_manifests(tmp_path):
    """`npc-sdk export --block-size 64`: every MatMulNBits of decoder.onnx takes 64 weights a scale, the manifest
    says so, and its decode step stays as near the fp32 export as blocks of 32 do (scales misplaced would not)."""
    import subprocess
    import sys

    import onnx
    from npc_export.build.onnx_export import export_model

    checkpoint = tiny_qwen2(tmp_path / "tiny-qwen2")
    with pytest.raises(ValueError, match="block_size: must be one of 16, 32, 64, 128, 256, got 48"):
        export_model(tmp_path / "b48", "int4", decoder=checkpoint, block_size=48, log=lambda _m: None)
    assert not (tmp_path / "b48").exists()
    run = subprocess.run(
        [sys.executable, "-m", "npc_sdk.cli", "export", "--decoder", str(checkpoint), "--block-size", "64",
         "--out", str(tmp_path / "b64")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    blocks = {
        (node.op_type, attr.i)
        for node in onnx.load(str(tmp_path / "b64" / "decoder.onnx")).graph.node
        for attr in node.attribute
        if node.op_type == "MatMulNBits" and attr.name == "block_size"
    }
    assert blocks == {("MatMulNBits", 64)}
    entry = json.loads((tmp_path / "b64" / "manifest.json").read_text())["model"]["decoder"]
    assert entry["block_size"] == 64 and entry["quantization"] == "4-bit weights, symmetric, blocks of 64"
    reference = _prompt_logits(_export(checkpoint, tmp_path / "fp32", "fp32"))
    # random tiny weights round badly at 4 bits (relative error ~0.3 at 32, ~0.55 at 64), but the logits keep
    # their direction; scales applied to the wrong blocks would leave them unrelated (cosine near 0)
    cosine = {
        block: float(
            np.dot(got := _prompt_logits(folder), reference) / np.linalg.norm(got) / np.linalg.norm(reference)
        )
        for block, folder in ((32, _export(checkpoint, tmp_path / "b32", "int4")), (64, tmp_path / "b64"))
    }
    print(f"\ncosine of the decode step's logits to fp32's: {cosine}")
    assert cosine[32] > 0.7 and cosine[64] > 0.7


def test_an_fp32_export_with_a_block_size_is_refused_before_a_model_loads(tmp_path, capsys):
    from npc_sdk.cli import main

    out = tmp_path / "fp32-b64"
    assert main(["export", "--precision", "fp32", "--block-size", "64", "--out", str(out)]) == 2
    assert "block_size: 64: an fp32 export has no weight blocks" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit) as refused:
        main(["export", "--block-size", "48"])
    assert refused.value.code == 2 and "invalid choice: 48" in capsys.readouterr().err


def test_an_export_with_another_block_size_gets_its_own_folder(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from npc_sdk.cli.model import export_folder

    monkeypatch.setenv("NPC_SDK_CACHE", str(tmp_path))
    default = SimpleNamespace(is_default=True, name="SmolLM2-135M-Instruct", sha256="0" * 64)
    own = SimpleNamespace(is_default=False, name="qwen2.5-1.5b", sha256="abcdef0123" + "0" * 54)
    assert export_folder("int4", default) == tmp_path / "models" / "npc-default-int4"
    assert export_folder("int4", default, 128) == tmp_path / "models" / "npc-default-int4-b128"
    assert export_folder("int4", own) == tmp_path / "models" / "qwen2.5-1.5b-abcdef01-int4"
    assert export_folder("int8", own, 64) == tmp_path / "models" / "qwen2.5-1.5b-abcdef01-int8-b64"
