"""Text encoder and role encoder: all-MiniLM-L6-v2 (one BERT, two roles).

The text encoder gives the player's line as token states v_T [B, L, 384]; the role encoder reads the persona and
gives v_R [B, 384], mean-pooled over real tokens and L2-normalised as sentence-transformers does for this model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import BertModel
from transformers.utils import logging as hf_logging

TEXT_DIM = 384  # MiniLM hidden size: width of v_T tokens and of v_R


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token states where mask is 1: [B, L, D], [B, L] -> [B, D]."""
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


class TextEncoder(nn.Module):
    """Player text -> (v_T token states [B, L, 384], pooled sentence vector [B, 384])."""

    def __init__(self, bert: BertModel) -> None:
        super().__init__()
        self.bert = bert

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        states = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = nn.functional.normalize(mean_pool(states, attention_mask), dim=-1)
        return states, pooled

    @classmethod
    def from_folder(cls, folder: Path) -> TextEncoder:
        # The checkpoint's pooler (unused here) is reported as unexpected keys at warning level; keep loads quiet.
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            bert = BertModel.from_pretrained(str(folder), local_files_only=True, add_pooling_layer=False)
        finally:
            hf_logging.set_verbosity(verbosity)
        return cls(bert.eval())


class RoleEncoder(nn.Module):
    """Persona text -> v_R [B, 384]; shares the text encoder's weights (the same sentence space)."""

    def __init__(self, text_encoder: TextEncoder) -> None:
        super().__init__()
        self.text_encoder = text_encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(input_ids, attention_mask)[1]
