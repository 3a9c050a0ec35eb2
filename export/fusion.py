"""Co-attention fusion: v_I (image grid), v_T (player tokens) and v_R (persona) -> K prefix vectors for the decoder.

The published form is  alpha_IT = softmax(v_I^T W1 v_T),  alpha_TR = softmax(v_T^T W2 v_R),
v_M = alpha_IT v_T + alpha_TR v_R.  Here each bilinear score is a multi-head cross-attention:
  * alpha_IT: every text token attends over the 7x7 image cells (what on screen the line is about);
  * alpha_TR: the role vector attends over the grounded text tokens (which words matter to this character);
  * K learned slot queries, shifted by v_R, read the fused memory [grounded v_T ; v_R + role-read text] -> v_M.
v_M is projected to the decoder's hidden size and scaled to the size of its token embeddings. A tanh gate,
zero at initialisation, multiplies the result: untrained fusion weights give all-zero prefix vectors.

A grounding head sits beside it: every image cell scores the scene tags (object categories, terrain, time of
day; scene_lexicon.TAG_WORDS), a tag's score is its best cell's, and the `tag_slots` most likely tags present are
handed to the decoder as the decoder's own embeddings of those words, ahead of the K vectors. A frozen decoder
reads its own word embeddings without training, so what the picture holds reaches it in a form it already
understands, while the K learned vectors carry how to talk about it. The tag head has its own zero-initialised
gate, and tags below probability 0.5 are zero vectors.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

from .scene_lexicon import TAG_WORDS


@dataclass
class FusionConfig:
    image_dim: int = 1280  # channels of one v_I cell (EfficientNet-Lite0 head)
    image_cells: int = 49  # cells in the image grid (7x7)
    text_dim: int = 384  # width of v_T tokens and of v_R (all-MiniLM-L6-v2)
    fusion_dim: int = 384  # width inside the fusion
    heads: int = 6  # heads of each cross-attention
    prefix_len: int = 8  # K: prefix vectors handed to the decoder
    decoder_dim: int = 576  # decoder hidden size (SmolLM2-135M)
    embed_rms: float = 1.0  # typical RMS of one decoder token embedding; prefix vectors are scaled to it
    tag_words: tuple[str, ...] = TAG_WORDS  # what the grounding head can say a picture holds
    tag_slots: int = 6  # tags handed to the decoder, most likely first (terrain and time take two)

    @property
    def prefix_positions(self) -> int:
        """Decoder positions the fusion fills: tag slots, then the K fused vectors."""
        return self.tag_slots + self.prefix_len

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


class CrossAttention(nn.Module):
    """Multi-head attention of queries over keys/values with an additive mask; returns output and weights."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, query: torch.Tensor, memory: torch.Tensor, key_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, lq, d = query.shape
        h, hd = self.heads, d // self.heads
        q = self.q(query).view(b, lq, h, hd).transpose(1, 2)  # [B, h, Lq, hd]
        k, v = self.kv(memory).view(b, -1, 2, h, hd).permute(2, 0, 3, 1, 4)  # [B, h, Lk, hd] each
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)  # [B, h, Lq, Lk]
        # masked keys get -1e4 (not -inf) so a row with no valid key stays finite; callers zero such rows
        scores = scores + (1.0 - key_mask[:, None, None, :].to(scores.dtype)) * -1e4
        alpha = scores.softmax(-1)
        out = (alpha @ v).transpose(1, 2).reshape(b, lq, d)
        return self.out(out), alpha


class CoAttentionFusion(nn.Module):
    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.fusion_dim
        self.image_proj = nn.Sequential(nn.LayerNorm(cfg.image_dim), nn.Linear(cfg.image_dim, d))
        self.cell_pos = nn.Parameter(torch.randn(cfg.image_cells, d) * 0.02)  # where on screen a cell is
        self.text_proj = nn.Sequential(nn.LayerNorm(cfg.text_dim), nn.Linear(cfg.text_dim, d))
        self.role_proj = nn.Sequential(nn.LayerNorm(cfg.text_dim), nn.Linear(cfg.text_dim, d))
        self.attn_IT = CrossAttention(d, cfg.heads)  # text over image
        self.attn_TR = CrossAttention(d, cfg.heads)  # role over text
        self.slots = nn.Parameter(torch.randn(cfg.prefix_len, d) * 0.02)
        self.attn_M = CrossAttention(d, cfg.heads)  # slots over the fused memory
        self.norm_M = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.to_decoder = nn.Linear(d, cfg.decoder_dim)
        self.gate = nn.Parameter(torch.zeros(()))  # tanh(0) = 0: untrained fusion leaves the decoder alone
        self.tag_head = nn.Sequential(
            nn.LayerNorm(cfg.image_dim),
            nn.Linear(cfg.image_dim, d),
            nn.GELU(),
            nn.Linear(d, len(cfg.tag_words)),
        )
        self.tag_gate = nn.Parameter(torch.zeros(()))
        # the decoder's embedding of each tag word; saved with the weights so a trained fusion is self-contained
        self.register_buffer("tag_embeds", torch.zeros(len(cfg.tag_words), cfg.decoder_dim))

    def set_tag_embeddings(self, table: np.ndarray, tokenizer: Tokenizer) -> None:
        """Fill `tag_embeds` from the decoder's embedding table (each tag word is one token with a space)."""
        rows = []
        for word in self.cfg.tag_words:
            ids = tokenizer.encode(" " + word, add_special_tokens=False).ids
            if len(ids) != 1:
                raise ValueError(f"tag word {word!r} is {len(ids)} decoder tokens; tags must be one token")
            rows.append(table[ids[0]])
        with torch.no_grad():
            self.tag_embeds.copy_(torch.from_numpy(np.stack(rows)).float())

    def tag_logits(self, v_I: torch.Tensor) -> torch.Tensor:
        """[B, n_tags]: how sure the head is that each tag is somewhere in the picture (best cell)."""
        return self.tag_head(v_I).amax(dim=1)

    def forward(
        self,
        v_I: torch.Tensor,  # [B, 49, 1280] image grid
        has_image: torch.Tensor,  # [B] 1.0 where a screenshot came with the turn
        v_T: torch.Tensor,  # [B, L, 384] player token states
        text_mask: torch.Tensor,  # [B, L] 1 for real tokens
        v_R: torch.Tensor,  # [B, 384] role vector
    ) -> torch.Tensor:
        b = v_T.shape[0]
        has_image = has_image.to(v_T.dtype)
        img = self.image_proj(v_I) + self.cell_pos  # [B, 49, d]
        txt = self.text_proj(v_T)  # [B, L, d]
        role = self.role_proj(v_R).unsqueeze(1)  # [B, 1, d]

        image_mask = has_image[:, None].expand(b, img.shape[1])
        txt_from_img, _alpha_IT = self.attn_IT(txt, img, image_mask)
        grounded = txt + has_image[:, None, None] * txt_from_img  # alpha_IT v_T term

        role_from_txt, _alpha_TR = self.attn_TR(role, grounded, text_mask)
        role = role + role_from_txt  # alpha_TR v_R term

        memory = torch.cat([grounded, role], dim=1)  # [B, L+1, d]
        memory_mask = torch.cat([text_mask.to(v_T.dtype), torch.ones(b, 1, dtype=v_T.dtype)], dim=1)
        queries = self.slots.unsqueeze(0) + role  # [B, K, d]
        read, _ = self.attn_M(queries, memory, memory_mask)
        v_M = self.norm_M(queries + read)
        v_M = v_M + self.mlp(v_M)  # [B, K, d]

        prefix = F.layer_norm(self.to_decoder(v_M), (self.cfg.decoder_dim,)) * self.cfg.embed_rms

        tag_p = torch.sigmoid(self.tag_logits(v_I)) * has_image[:, None]  # [B, n_tags]
        top_p, top_i = tag_p.topk(self.cfg.tag_slots, dim=-1)  # [B, S]
        tags = self.tag_embeds[top_i] * (top_p > 0.5).to(prefix.dtype)[..., None]  # [B, S, decoder_dim]
        return torch.cat([torch.tanh(self.tag_gate) * tags, torch.tanh(self.gate) * prefix], dim=1)

    @torch.no_grad()
    def present_tags(self, v_I: torch.Tensor) -> list[list[str]]:
        """Per picture, the tags the head says are present (probability over 0.5)."""
        probs = torch.sigmoid(self.tag_logits(v_I))
        return [
            [w for w, p in zip(self.cfg.tag_words, row.tolist(), strict=True) if p > 0.5] for row in probs
        ]

    @property
    def is_trained(self) -> bool:
        return bool(self.gate.detach().abs() > 0 or self.tag_gate.detach().abs() > 0)
