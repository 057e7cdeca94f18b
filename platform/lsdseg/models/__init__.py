"""The four networks of LSD-seg: F+C (`FCN8s`), G (`Generator`) and D (`Discriminator`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch import nn

from lsdseg.config import ModelConfig
from lsdseg.models.discriminator import Discriminator, DomainLabel
from lsdseg.models.fcn8s import FCN8s, PretrainedError, small_fcn8s, vgg16_fcn8s
from lsdseg.models.generator import Generator

__all__ = ["Nets", "build_nets", "start_note", "Discriminator", "DomainLabel", "FCN8s", "Generator", "PretrainedError"]


@dataclass
class Nets:
    """F+C always; G and D only when the run adapts (mode `lsd`)."""

    f: FCN8s
    g: Optional[Generator]
    d: Optional[Discriminator]

    def named(self) -> dict[str, nn.Module]:
        return {name: net for name, net in (("f", self.f), ("g", self.g), ("d", self.d)) if net is not None}


def build_nets(cfg: ModelConfig, adapt: bool) -> Nets:
    if cfg.backbone == "vgg16":
        f = vgg16_fcn8s(cfg.num_classes, cfg.pretrained)
    else:
        f = small_fcn8s(cfg.num_classes, cfg.small_width)
    if not adapt:
        return Nets(f, None, None)
    g = Generator(f.feature_spec, cfg.g_width, cfg.g_blocks, cfg.dropout)
    d = Discriminator(cfg.num_classes, cfg.d_width, cfg.d_blocks, cfg.dropout)
    return Nets(f, g, d)


def start_note(cfg: ModelConfig) -> Optional[str]:
    """What someone starting a run should hear about where F starts, or None: a VGG-16 without
    `model.pretrained` trains from random weights, far from the paper's ImageNet start, and would do so silently."""
    if cfg.backbone == "vgg16" and cfg.pretrained is None:
        return ("model.pretrained is not set: F (VGG-16) starts from random weights, not the paper's ImageNet ones; "
                "give a local copy of torchvision's vgg16-397923af.pth with --model.pretrained=PATH")
    return None
