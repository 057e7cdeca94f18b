"""G: decodes F's multi-scale embedding (fc7, pool4, pool3) back to an image of exactly the input size.

Reference: `_netG` in `code/torchfcn/models/fcn8s_LSD.py` (section 1). No noise input (nz = 0): the
dropout inside the residual blocks is G's only source of stochasticity, as in the paper. Modification:
each stage's output is cropped/padded to the next skip's size, so any input size works, not only the
reference's 320x640 and 512x1024.
"""
from __future__ import annotations

import torch
from torch import nn

from lsdseg.models.blocks import Features, ResnetBlock, fit_to, gan_init
from lsdseg.models.fcn8s import FeatureSpec


def _up(cin: int, cout: int, kernel: int, stride: int, padding: int, blocks: int, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
        nn.InstanceNorm2d(cout),
        nn.ReLU(inplace=True),
    ]
    return layers + [ResnetBlock(cout, bias=False, leaky=False, dropout=dropout) for _ in range(blocks)]


class Generator(nn.Module):
    """forward(Features, (H, W)) -> image Bx3xHxW in [0, 1]."""

    def __init__(self, spec: FeatureSpec, width: int = 64, blocks: int = 2, dropout: float = 0.5):
        super().__init__()
        w = width
        self.from_fc7 = nn.Sequential(
            *_up(spec.fc7, 4 * w, spec.fc6_kernel, 1, spec.fc6_padding, blocks, dropout),  # undoes fc6's size change
            *_up(4 * w, 8 * w, 3, 2, 1, blocks, dropout),
        )
        self.with_pool4 = nn.Sequential(*_up(8 * w + spec.pool4, 4 * w, 3, 2, 1, blocks, dropout))
        self.with_pool3 = nn.Sequential(
            *_up(4 * w + spec.pool3, 2 * w, 5, 2, 2, blocks, dropout),
            *_up(2 * w, w, 5, 2, 2, blocks, dropout),
        )
        self.to_image = nn.Sequential(nn.ConvTranspose2d(w, 3, 8, stride=2, padding=spec.image_padding), nn.Sigmoid())
        gan_init(self)

    def forward(self, feats: Features, size: tuple[int, int] | torch.Size) -> torch.Tensor:
        h = fit_to(self.from_fc7(feats.fc7), feats.pool4.shape[-2:])
        h = fit_to(self.with_pool4(torch.cat([h, feats.pool4], 1)), feats.pool3.shape[-2:])
        h = self.with_pool3(torch.cat([h, feats.pool3], 1))
        return fit_to(self.to_image(h), size)
