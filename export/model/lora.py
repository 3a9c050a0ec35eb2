"""LoRA on the decoder (an option of `npc-sdk train`): low-rank updates to the attention (and MLP) projections.

While training, each targeted nn.Linear is wrapped: y = W x + (alpha / r) * B(A(x)), with B zero-initialised so
training starts from the base model. The adapters are saved on their own (decoder_lora.safetensors, a few MB) and
merged into the weights when the model loads (W += (alpha / r) * B @ A), so export, quantisation and the runtime
see an ordinary decoder and pay nothing per token.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")  # attention projections
MLP_TARGETS = ("gate_proj", "up_proj", "down_proj")  # the MLP too, with `npc-sdk train --lora-mlp`


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.A = nn.Parameter(torch.randn(rank, base.in_features) / rank**0.5 * 0.1)
        self.B = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * ((x @ self.A.t()) @ self.B.t())


def _targets(lm: nn.Module, targets: tuple[str, ...] = TARGETS + MLP_TARGETS):
    for name, module in lm.named_modules():
        for attr in targets:
            child = getattr(module, attr, None)
            if isinstance(child, (nn.Linear, LoRALinear)):
                yield f"{name}.{attr}", module, attr, child


def add_lora(
    lm: nn.Module, rank: int, alpha: float, targets: tuple[str, ...] = TARGETS
) -> list[nn.Parameter]:
    """Wrap every projection named in `targets`; returns the new trainable parameters."""
    params: list[nn.Parameter] = []
    for _name, parent, attr, child in list(_targets(lm, targets)):
        if isinstance(child, nn.Linear):
            wrapped = LoRALinear(child, rank, alpha)
            setattr(parent, attr, wrapped)
            params += [wrapped.A, wrapped.B]
    return params


def save_lora(lm: nn.Module, path: Path) -> None:
    tensors, meta = {}, {}
    for name, _parent, _attr, child in _targets(lm):
        if isinstance(child, LoRALinear):
            tensors[f"{name}.A"] = child.A.detach().half().contiguous()
            tensors[f"{name}.B"] = child.B.detach().half().contiguous()
            meta["scale"] = str(child.scale)
    targets = sorted({n.rsplit(".", 1)[1] for n in (k.rsplit(".", 1)[0] for k in tensors)})
    save_file(tensors, str(path), metadata={"scale": meta.get("scale", "1"), "targets": json.dumps(targets)})


def remove_lora(lm: nn.Module, merge: bool) -> None:
    """Unwrap the adapters, folding them into the base weights when `merge`."""
    for _name, parent, attr, child in list(_targets(lm)):
        if isinstance(child, LoRALinear):
            if merge:
                with torch.no_grad():
                    child.base.weight += child.scale * (child.B @ child.A)
            setattr(parent, attr, child.base)


def merge_lora_file(lm: nn.Module, path: Path) -> int:
    """W += scale * B @ A for every adapter in the file; returns how many matrices changed."""
    changed = 0
    with safe_open(str(path), framework="pt") as f:
        scale = float(f.metadata()["scale"])
        names = {k.rsplit(".", 1)[0] for k in f.keys()}
        modules = dict(lm.named_modules())
        for name in sorted(names):
            linear = modules[name]
            if not isinstance(linear, nn.Linear):
                raise ValueError(f"{path}: {name} is not a linear layer of this decoder")
            with torch.no_grad():
                b, a = f.get_tensor(f"{name}.B").float(), f.get_tensor(f"{name}.A").float()
                linear.weight += scale * (b @ a)
            changed += 1
    return changed
