"""Layers shared by the networks (reference: `code/torchfcn/models/model_utils.py`)."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class Features(NamedTuple):
    """F's multi-scale embedding that G decodes: fc7 (1/32), pool4 (1/16), pool3 (1/8)."""

    fc7: torch.Tensor
    pool4: torch.Tensor
    pool3: torch.Tensor


class ResnetBlock(nn.Module):
    """out = x + Dropout(act(InstanceNorm(Conv3x3(x)))), as in the reference's ResnetBlock."""

    def __init__(self, channels: int, bias: bool, leaky: bool, dropout: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=bias),
            nn.InstanceNorm2d(channels),
            nn.LeakyReLU(0.2) if leaky else nn.ReLU(),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def fit_to(x: torch.Tensor, size: tuple[int, int] | torch.Size, offset: int = 0) -> torch.Tensor:
    """Crop x to `size` starting at `offset` (FCN-style); pad by replication where it is too small."""
    h, w = size
    x = x[..., offset : offset + h, offset : offset + w]
    short_h, short_w = h - x.shape[-2], w - x.shape[-1]
    if short_h or short_w:
        # replication by clamped indices rather than F.pad(mode="replicate"): the same values, and a backward
        # that torch.compile handles (inductor in PyTorch 2.14 mis-strides replication_pad2d_backward here)
        rows = torch.arange(h, device=x.device).clamp(max=x.shape[-2] - 1)
        cols = torch.arange(w, device=x.device).clamp(max=x.shape[-1] - 1)
        x = x[..., rows[:, None], cols]
    return x


def gan_init(module: nn.Module) -> None:
    """The reference's `weights_init` for G and D: conv weights N(0, 0.02), biases U(-0.01, 0.01)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.uniform_(m.bias, -0.01, 0.01)
