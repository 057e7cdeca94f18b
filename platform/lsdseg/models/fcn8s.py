"""F (embedding) + C (pixel classifier): FCN-8s on a VGG trunk built from torchvision's VGG definition.

Reference: `FCN8s_LSD` in `code/torchfcn/models/fcn8s_LSD.py` (section 1 of shared/reference/lsdseg.md).
Modifications: ImageNet RGB normalisation inside the network (the pretrained weights are torchvision's,
not Caffe's BGR ones), so every other network and the data pipeline work on RGB in [0, 1]; a `small`
trunk with the same interfaces; no download, ever: pretrained weights come from a local file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from lsdseg.models.blocks import Features, fit_to

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PretrainedError(ValueError):
    """Pretrained weights that are missing or do not fit; the message is one line with the fix."""


@dataclass(frozen=True)
class FeatureSpec:
    """What G needs to know to mirror F: channels of each feature and the shape arithmetic of fc6."""

    fc7: int
    pool4: int
    pool3: int
    fc6_kernel: int
    fc6_padding: int
    image_padding: int  # G's last layer crops this much on each side (undoes conv1_1's padding)


def _bilinear_kernel(channels: int, size: int) -> torch.Tensor:
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    filt = (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)
    weight = np.zeros((channels, channels, size, size), dtype=np.float32)
    weight[range(channels), range(channels)] = filt
    return torch.from_numpy(weight)


def _frozen_upsample(channels: int, size: int, stride: int, padding: int) -> nn.ConvTranspose2d:
    """Bilinear-initialised transposed conv that never trains (the reference never optimises them)."""
    up = nn.ConvTranspose2d(channels, channels, size, stride=stride, padding=padding, bias=False)
    up.weight.data.copy_(_bilinear_kernel(channels, size))
    up.weight.requires_grad_(False)
    return up


class FCN8s(nn.Module):
    """forward(x in [0,1], Bx3xHxW) -> (scores BxKxHxW, Features(fc7, pool4, pool3))."""

    def __init__(
        self,
        trunk: nn.Sequential,
        fc_channels: int,
        num_classes: int,
        fc6_kernel: int,
        fc6_padding: int,
        first_padding: int,
        image_padding: int,
        offsets: tuple[int, int, int],
        up_paddings: tuple[int, int, int],
        size_multiple: int,
    ):
        super().__init__()
        pools = [i for i, m in enumerate(trunk) if isinstance(m, nn.MaxPool2d)]
        if len(pools) != 5:
            raise ValueError("the VGG trunk must have 5 max-pools")
        for i in pools:
            trunk[i].ceil_mode = True  # FCN pools round up so no border pixel is dropped
        trunk[0].padding = (first_padding, first_padding)
        self.to_pool3 = trunk[: pools[2] + 1]
        self.to_pool4 = trunk[pools[2] + 1 : pools[3] + 1]
        self.to_pool5 = trunk[pools[3] + 1 :]
        c3, c4, c5 = ([m for m in trunk[:p] if isinstance(m, nn.Conv2d)][-1].out_channels for p in pools[2:])
        self.fc = nn.Sequential(
            nn.Conv2d(c5, fc_channels, fc6_kernel, padding=fc6_padding), nn.ReLU(inplace=True), nn.Dropout2d(),
            nn.Conv2d(fc_channels, fc_channels, 1), nn.ReLU(inplace=True), nn.Dropout2d(),
        )
        self.score_fr = nn.Conv2d(fc_channels, num_classes, 1)
        self.score_pool4 = nn.Conv2d(c4, num_classes, 1)
        self.score_pool3 = nn.Conv2d(c3, num_classes, 1)
        for score in (self.score_fr, self.score_pool4, self.score_pool3):
            nn.init.zeros_(score.weight)  # reference: score layers start at zero
            nn.init.zeros_(score.bias)
        self.upscore2 = _frozen_upsample(num_classes, 4, 2, up_paddings[0])
        self.upscore_pool4 = _frozen_upsample(num_classes, 4, 2, up_paddings[1])
        self.upscore8 = _frozen_upsample(num_classes, 16, 8, up_paddings[2])
        self.offsets = offsets
        self.size_multiple = size_multiple
        self.feature_spec = FeatureSpec(fc_channels, c4, c3, fc6_kernel, fc6_padding, image_padding)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Features]:
        size = x.shape[-2:]
        m = self.size_multiple
        if m > 1:  # pad to a multiple of the total stride so every skip aligns exactly
            x = nn.functional.pad(x, (0, -size[1] % m, 0, -size[0] % m), mode="replicate")
        x = (x - self.mean) / self.std
        pool3 = self.to_pool3(x)
        pool4 = self.to_pool4(pool3)
        fc7 = self.fc(self.to_pool5(pool4))
        # C in fp32 whatever the autocast: bf16 scores (8 bits of mantissa) flip near-tied argmaxes. The
        # score layers and upsamplers have a few channels, so this costs little.
        with torch.autocast(x.device.type, enabled=False):
            up = self.upscore2(self.score_fr(fc7.float()))
            up = up + fit_to(self.score_pool4(pool4.float()), up.shape[-2:], self.offsets[0])
            up = self.upscore_pool4(up)
            up = up + fit_to(self.score_pool3(pool3.float()), up.shape[-2:], self.offsets[1])
            scores = fit_to(self.upscore8(up), size, self.offsets[2])
        return scores, Features(fc7, pool4, pool3)


def vgg16_fcn8s(num_classes: int, pretrained: str | None = None) -> FCN8s:
    """The reference's F+C: VGG-16 with conv1_1 padding 100, fc6 7x7, FCN-8s crops at 5, 9 and 31."""
    net = FCN8s(make_layers(cfgs["D"]), 4096, num_classes, fc6_kernel=7, fc6_padding=0, first_padding=100,
                image_padding=100, offsets=(5, 9, 31), up_paddings=(0, 0, 0), size_multiple=1)
    if pretrained is not None:
        load_vgg16(net, Path(pretrained))
    return net


def small_fcn8s(num_classes: int, width: int) -> FCN8s:
    """Same interfaces with a few channels: trains the whole method on a CPU in minutes."""
    w = width
    layers = [w, "M", 2 * w, "M", 4 * w, 4 * w, "M", 8 * w, 8 * w, "M", 8 * w, "M"]
    return FCN8s(make_layers(layers), 16 * w, num_classes, fc6_kernel=3, fc6_padding=1, first_padding=1,
                 image_padding=0, offsets=(0, 0, 0), up_paddings=(1, 1, 4), size_multiple=32)


def load_vgg16(net: FCN8s, path: Path) -> None:
    """Copy torchvision's VGG-16 weights (conv1_1..conv5_3, fc6, fc7) from a local state_dict file."""
    fix = "pass the path of torchvision's VGG-16 state_dict (vgg16-397923af.pth) as model.pretrained"
    if not path.is_file():
        raise PretrainedError(f"pretrained weights {path} not found: {fix}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt or non-tensor pickle: say which file, not a traceback
        raise PretrainedError(f"pretrained weights {path} cannot be loaded ({type(err).__name__}): {fix}") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    trunk = [m for part in (net.to_pool3, net.to_pool4, net.to_pool5) for m in part if isinstance(m, nn.Conv2d)]
    # torchvision's names: features.<index>.weight; any other key (a foreign file's) is not a VGG conv layer
    vgg_convs = [k[: -len(".weight")] for k in (state if isinstance(state, dict) else {})
                 if isinstance(k, str) and k.startswith("features.") and k.endswith(".weight") and k.split(".")[1].isdigit()]
    vgg_convs.sort(key=lambda k: int(k.split(".")[1]))
    targets = [(f"{k}.weight", f"{k}.bias", conv) for k, conv in zip(vgg_convs, trunk, strict=False)]
    targets += [("classifier.0.weight", "classifier.0.bias", net.fc[0]), ("classifier.3.weight", "classifier.3.bias", net.fc[3])]
    if len(vgg_convs) != len(trunk):
        raise PretrainedError(f"pretrained weights {path} do not fit VGG-16 (found {len(vgg_convs)} conv layers, need {len(trunk)}): {fix}")
    with torch.no_grad():
        for w_key, b_key, conv in targets:
            if w_key not in state or b_key not in state:
                raise PretrainedError(f"pretrained weights {path} lack {w_key}: {fix}")
            weight = state[w_key]
            if not (isinstance(weight, torch.Tensor) and isinstance(state[b_key], torch.Tensor)):
                raise PretrainedError(f"pretrained weights {path}: {w_key} is a {type(weight).__name__}, not a tensor: {fix}")
            if weight.numel() != conv.weight.numel() or state[b_key].shape != conv.bias.shape:
                raise PretrainedError(f"pretrained weights {path}: {w_key} has shape {tuple(weight.shape)}, "
                                      f"need {tuple(conv.weight.shape)}: {fix}")
            conv.weight.copy_(weight.reshape(conv.weight.shape))  # fc6/fc7: linear -> conv
            conv.bias.copy_(state[b_key])
