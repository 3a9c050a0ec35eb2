"""Tiny, randomly initialised decoders of the supported families, written by the tests (nothing downloaded).

Each is a real transformers checkpoint folder (config.json, model.safetensors, tokenizer.json, tokenizer_config.json
with the family's chat template) with small widths and unusual shapes: head_dim that is not hidden/heads, one KV
head, untied heads, Llama-3 RoPE scaling. `write_gguf` writes the same weights as a GGUF file the way llama.cpp's
converter does (Q/K rows permuted for Llama), with the tokenizer and template in its metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
QWEN2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
LLAMA3_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]
QWEN2_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CORPUS = [
    "Hello! Can you fix my sword? I see a dragon flying over the forge.",
    "You are Brakka, a gruff dwarven blacksmith in a mountain village. Stay in character.",
    "What is that green slime doing on the path? The meadow is full of coins and grass at night.",
    "Hmph. Leave it on the anvil, lad, I'll see to it. The harbour master keeps the ledgers.",
    "system user assistant reply the a an of to in is it that for on with as was at by",
] * 4


def make_tokenizer(specials: list[str], vocab_size: int = 320) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def _write(folder: Path, model, tok: Tokenizer, template: str, bos: str | None, eos: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tok.save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": eos, "chat_template": template}
    if bos:
        config["bos_token"] = bos
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return folder


def tiny_llama(folder: Path, seed: int = 1) -> Path:
    """Llama-3 style: head_dim 32 with hidden 96 (heads x head_dim != hidden), 4 query / 2 KV heads, 3 layers,
    an untied LM head and Llama-3 RoPE scaling from an original context of 32 positions."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = make_tokenizer(LLAMA3_SPECIALS)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=96,
        intermediate_size=176,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        initializer_range=0.2,
        bos_token_id=tok.token_to_id("<|begin_of_text|>"),
        eos_token_id=[tok.token_to_id("<|end_of_text|>"), tok.token_to_id("<|eot_id|>")],
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 32,
        },
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    return _write(folder, model, tok, LLAMA3_TEMPLATE, "<|begin_of_text|>", "<|end_of_text|>")


def tiny_qwen2(folder: Path, seed: int = 3) -> Path:
    """Qwen2 style: QKV biases, 4 query heads over a single KV head, 2 layers, tied embeddings, ChatML."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = make_tokenizer(QWEN2_SPECIALS)
    config = Qwen2Config(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        intermediate_size=112,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        max_position_embeddings=512,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        initializer_range=0.2,
        eos_token_id=tok.token_to_id("<|im_end|>"),
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():  # random biases: the initialiser leaves them at zero, which would test nothing
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0.0, 0.2)
    return _write(folder, model, tok, QWEN2_TEMPLATE, None, "<|im_end|>")


def _permute_qk(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's row order for Q/K (interleaved rotary halves); transformers undoes it on load."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(hf_folder: Path, out: Path) -> Path:
    """A tiny Llama or Qwen2 folder as an F32 GGUF file with its tokenizer (gpt2 BPE) and chat template."""
    import gguf
    from safetensors.numpy import load_file

    cfg = json.loads((hf_folder / "config.json").read_text())
    tok = json.loads((hf_folder / "tokenizer.json").read_text())
    tconf = json.loads((hf_folder / "tokenizer_config.json").read_text())
    state = load_file(str(hf_folder / "model.safetensors"))
    arch = cfg["model_type"]  # llama or qwen2: the GGUF architecture names are the same
    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_name(hf_folder.name)
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(cfg["num_attention_heads"])
    writer.add_head_count_kv(cfg["num_key_value_heads"])
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
    writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    writer.add_vocab_size(cfg["vocab_size"])
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
    specials = {t["content"] for t in tok["added_tokens"]}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([t for t, _ in vocab])
    writer.add_token_types(
        [gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t, _ in vocab]
    )
    merges = tok["model"]["merges"]
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    if tconf.get("bos_token"):
        writer.add_bos_token_id(tok["model"]["vocab"][tconf["bos_token"]])
    stop = "<|eot_id|>" if arch == "llama" else tconf["eos_token"]
    writer.add_eos_token_id(tok["model"]["vocab"][stop])
    writer.add_chat_template(tconf["chat_template"])
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    names = {
        "input_layernorm": "attn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "post_attention_layernorm": "ffn_norm",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    writer.add_tensor("token_embd.weight", state["model.embed_tokens.weight"])
    for i in range(cfg["num_hidden_layers"]):
        for hf, gg in names.items():
            w = state[f"model.layers.{i}.{hf}.weight"]
            if arch == "llama" and gg == "attn_q":
                w = _permute_qk(w, heads)
            elif arch == "llama" and gg == "attn_k":
                w = _permute_qk(w, kv_heads)
            writer.add_tensor(f"blk.{i}.{gg}.weight", np.ascontiguousarray(w, dtype=np.float32))
            bias = state.get(f"model.layers.{i}.{hf}.bias")
            if bias is not None:
                writer.add_tensor(f"blk.{i}.{gg}.bias", np.ascontiguousarray(bias, dtype=np.float32))
    writer.add_tensor("output_norm.weight", state["model.norm.weight"])
    if "lm_head.weight" in state:  # untied; a tied model's GGUF has no output tensor
        writer.add_tensor("output.weight", state["lm_head.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
