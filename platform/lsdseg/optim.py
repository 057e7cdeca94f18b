"""Optimizers as in the public code: Adam for F/C (biases at a multiple of the lr, step decay), G and D."""
from __future__ import annotations

import torch

from lsdseg.config import OptimConfig
from lsdseg.models import Nets
from lsdseg.step import Optimizers


def build_optimizers(nets: Nets, o: OptimConfig) -> Optimizers:
    # F/C: weights at lr, biases at f_bias_lr_mult x lr; the frozen bilinear upsamplers are left out.
    trainable = [(n, p) for n, p in nets.f.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in trainable if not n.endswith("bias")], "lr_mult": 1.0},
        {"params": [p for n, p in trainable if n.endswith("bias")], "lr_mult": o.f_bias_lr_mult},
    ]
    for group in groups:
        group["lr"] = o.f_lr * group["lr_mult"]
    f = torch.optim.Adam(groups, betas=(o.f_beta1, o.f_beta2))
    if nets.g is None:
        return Optimizers(f, None, None)
    g = torch.optim.Adam(nets.g.parameters(), lr=o.g_lr, betas=(o.g_beta1, o.g_beta2))
    d = torch.optim.Adam(nets.d.parameters(), lr=o.d_lr, betas=(o.d_beta1, o.d_beta2))
    return Optimizers(f, g, d)


def set_f_lr(opt: torch.optim.Optimizer, o: OptimConfig, step: int) -> float:
    """The F/C learning rate of iteration `step` (1-based): a pure function of the step, so resumable."""
    lr = o.f_lr * o.f_lr_decay ** ((step - 1) // o.f_lr_decay_every)
    for group in opt.param_groups:
        group["lr"] = lr * group["lr_mult"]
    return lr
