"""Co-attention fusion: v_I (image grid), v_T (player tokens) and v_R (persona) -> K prefix vectors for the decoder.

The published form is  alpha_IT = softmax(v_I^T W1 v_T),  alpha_TR = softmax(v_T^T W2 v_R),
v_M = alpha_IT v_T + alpha_TR v_R.  Here each bilinear score is a multi-head cross-attention:
  * alpha_IT: every text token attends over the 8x14 image cells (what on screen the line is about);
  * alpha_TR: the role vector attends over the grounded text tokens (which words matter to this character);
  * K learned slot queries, shifted by v_R, read the fused memory [grounded v_T ; v_R + role-read text] -> v_M.
v_M is projected to the decoder's hidden size and scaled to the size of its token embeddings. A tanh gate,
zero at initialisation, multiplies the result: untrained fusion weights give all-zero prefix vectors.

A grounding head sits beside it: every image cell scores the vocabulary's tags (for the built-in scenes: object
categories, terrain, time of day), and a tag's probability is its best cell's. The fusion returns both: the
prefix vectors and the tag probabilities. The runtime turns the tags that pass their calibrated thresholds
(`tag_thresholds`, set by grounding.calibrate) into the scene facts the decoder reads as words and the
scene-word bias (npc_sdk.runtime.scene): what the picture holds reaches a 135M decoder in the form it
understands best, while the K learned vectors carry the rest.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from npc_sdk.runtime.images import GRID

from .vocabulary import TAG_WORDS

TAG_POOL = 4.0  # sharpness of the soft maximum that pools cell scores into a picture's tag score


def pool_cells(scores: torch.Tensor) -> torch.Tensor:
    """[B, cells, tags] -> [B, tags]: the soft maximum over cells (see CoAttentionFusion.tag_logits)."""
    return (torch.logsumexp(scores * TAG_POOL, dim=1) - math.log(scores.shape[1])) / TAG_POOL


@dataclass
class FusionConfig:
    image_dim: int = 1280  # channels of one v_I cell (EfficientNet-Lite0 head)
    image_cells: int = GRID[0] * GRID[1]  # cells in the image grid (8x14 over the 448x256 letterbox)
    mid_dim: int = 112  # channels of one v_mid cell (the encoder at stride 16)
    grid: tuple[int, int] = GRID  # rows, columns of v_I; v_mid has twice as many of each
    text_dim: int = 384  # width of v_T tokens and of v_R (all-MiniLM-L6-v2)
    fusion_dim: int = 384  # width inside the fusion
    heads: int = 6  # heads of each cross-attention
    prefix_len: int = 8  # K: prefix vectors handed to the decoder
    decoder_dim: int = 576  # decoder hidden size (SmolLM2-135M)
    embed_rms: float = 1.0  # typical RMS of one decoder token embedding; prefix vectors are scaled to it
    tag_words: tuple[str, ...] = TAG_WORDS  # the vocabulary: what the grounding head can say a picture holds

    @property
    def prefix_positions(self) -> int:
        """Decoder positions the fusion fills: the K fused vectors."""
        return self.prefix_len

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


class TagHead(nn.Module):
    """Scores every tag in every stride-16 cell from that cell's v_mid and the v_I of the stride-32 cell it lies in.

    A two-layer MLP over [v_mid ; v_I of the parent cell], with the first layer split in two so the wide v_I
    part is computed once per coarse cell (112) instead of once per fine cell (448)."""

    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__()
        self.grid = cfg.grid
        self.mid = nn.Sequential(nn.LayerNorm(cfg.mid_dim), nn.Linear(cfg.mid_dim, cfg.fusion_dim))
        self.top = nn.Sequential(nn.LayerNorm(cfg.image_dim), nn.Linear(cfg.image_dim, cfg.fusion_dim))
        self.out = nn.Sequential(nn.GELU(), nn.Linear(cfg.fusion_dim, len(cfg.tag_words)))

    def forward(self, v_I: torch.Tensor, v_mid: torch.Tensor) -> torch.Tensor:
        rows, cols = self.grid
        b = v_I.shape[0]
        top = self.top(v_I).transpose(1, 2).reshape(b, -1, rows, cols)  # [B, d, rows, cols]
        top = (
            top.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3).flatten(2).transpose(1, 2)
        )  # [B, 4c, d]
        return self.out(self.mid(v_mid) + top)  # [B, 4 * cells, n_tags]


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
        self.tag_head = TagHead(cfg)
        # per-tag score from which a tag counts as seen; saved with the weights (grounding.calibrate sets them)
        self.register_buffer("tag_thresholds", torch.full((len(cfg.tag_words),), 0.5))

    def cell_scores(self, v_I: torch.Tensor, v_mid: torch.Tensor) -> torch.Tensor:
        """[B, 4 * cells, n_tags]: the head's score of every tag in every stride-16 cell."""
        return self.tag_head(v_I, v_mid)

    def tag_logits(self, v_I: torch.Tensor, v_mid: torch.Tensor) -> torch.Tensor:
        """[B, n_tags]: how sure the head is that each tag is somewhere in the picture.

        A soft maximum over the cells (log-sum-exp at sharpness TAG_POOL, less its value for a uniform grid), the
        same in training, calibration and the exported graph: every cell gets gradient, and a tag's score is
        close to its best cell's."""
        return pool_cells(self.cell_scores(v_I, v_mid))

    def forward(
        self,
        v_I: torch.Tensor,  # [B, 112, 1280] image grid (8x14 cells)
        v_mid: torch.Tensor,  # [B, 448, 112] the stride-16 grid (16x28 cells)
        has_image: torch.Tensor,  # [B] 1.0 where a screenshot came with the turn
        v_T: torch.Tensor,  # [B, L, 384] player token states
        text_mask: torch.Tensor,  # [B, L] 1 for real tokens
        v_R: torch.Tensor,  # [B, 384] role vector
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prefix vectors [B, K, decoder_dim] and tag probabilities [B, n_tags] (zero without a picture)."""
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
        tag_p = torch.sigmoid(self.tag_logits(v_I, v_mid)) * has_image[:, None]  # [B, n_tags]
        return torch.tanh(self.gate) * prefix, tag_p

    @torch.no_grad()
    def present_tags(self, v_I: torch.Tensor, v_mid: torch.Tensor) -> list[list[str]]:
        """Per picture, the tags the head says are present (probability at or over each tag's threshold)."""
        probs = torch.sigmoid(self.tag_logits(v_I, v_mid))
        said = probs >= self.tag_thresholds[None, :]
        return [[w for w, s in zip(self.cfg.tag_words, row.tolist(), strict=True) if s] for row in said]

    @property
    def is_trained(self) -> bool:
        return bool(self.gate.detach().abs() > 0)
