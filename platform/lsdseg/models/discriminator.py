"""D: a dense patch discriminator with a 4-way domain/real-fake head and an auxiliary class head.

Reference: `_netD` in `code/torchfcn/models/fcn8s_LSD.py` (section 1): pix2pix-style patch output at
about 1/8 resolution, each location classified as one of `DomainLabel`, plus AC-GAN-style per-location
semantic logits. Input: images in [0, 1] (real ones, or G's reconstructions).
"""
from __future__ import annotations

from enum import IntEnum

import torch
from torch import nn

from lsdseg.models.blocks import ResnetBlock, gan_init


class DomainLabel(IntEnum):
    SRC_REAL = 0
    SRC_FAKE = 1  # G(F(x_s))
    TGT_REAL = 2
    TGT_FAKE = 3  # G(F(x_t))


class Discriminator(nn.Module):
    """forward(image) -> (domain logits Bx4xhxw, class logits BxKxhxw), h, w ~ H/8, W/8."""

    def __init__(self, num_classes: int, width: int = 128, blocks: int = 3, dropout: float = 0.5):
        super().__init__()

        def stage() -> list[nn.Module]:
            return [ResnetBlock(width, bias=True, leaky=True, dropout=dropout) for _ in range(blocks)]

        self.trunk = nn.Sequential(
            nn.Conv2d(3, width, 4, stride=2, padding=2), nn.InstanceNorm2d(width), nn.LeakyReLU(0.2),
            *stage(), nn.MaxPool2d(2), *stage(), nn.MaxPool2d(2), *stage(),
        )
        self.domain_head = nn.Conv2d(width, len(DomainLabel), 3, padding=1)
        self.class_head = nn.Conv2d(width, num_classes, 3, padding=1)
        gan_init(self)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(image)
        return self.domain_head(h), self.class_head(h)
