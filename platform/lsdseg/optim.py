"""Optimizers as in the public code: Adam for F/C (biases at a multiple of the lr, step decay), G and D."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lsdseg.config import OptimConfig
from lsdseg.models import Nets


@dataclass
class Optimizers:
    f: torch.optim.Optimizer
    g: torch.optim.Optimizer | None  # None in source-only and oracle runs, which have no G or D
    d: torch.optim.Optimizer | None


def build_optimizers(nets: Nets, o: OptimConfig) -> Optimizers:
    # F/C: weights at lr, biases at f_bias_lr_mult x lr; the frozen bilinear upsamplers are left out.
    trainable = [(n, p) for n, p in nets.f.named_parameters() if p.requires_grad]
    weights, biases = _f_lr_mults(o)
    groups = [
        {"params": [p for n, p in trainable if not n.endswith("bias")], "lr_mult": weights},
        {"params": [p for n, p in trainable if n.endswith("bias")], "lr_mult": biases},
    ]
    for group in groups:
        group["lr"] = o.f_lr * group["lr_mult"]
    f = torch.optim.Adam(groups, betas=(o.f_beta1, o.f_beta2))
    if nets.g is None:
        return Optimizers(f, None, None)
    g = torch.optim.Adam(nets.g.parameters(), lr=o.g_lr, betas=(o.g_beta1, o.g_beta2))
    d = torch.optim.Adam(nets.d.parameters(), lr=o.d_lr, betas=(o.d_beta1, o.d_beta2))
    return Optimizers(f, g, d)


def _f_lr_mults(o: OptimConfig) -> tuple[float, float]:
    """The lr multipliers of F/C's (weights, biases) param groups, in build_optimizers' order."""
    return 1.0, o.f_bias_lr_mult


def set_f_lr(opt: torch.optim.Optimizer, o: OptimConfig, step: int) -> float:
    """The F/C learning rate of iteration `step` (1-based): a pure function of the step, so resumable."""
    lr = o.f_lr * o.f_lr_decay ** ((step - 1) // o.f_lr_decay_every)
    for group in opt.param_groups:
        group["lr"] = lr * group["lr_mult"]
    return lr


def apply_hparams(opts: Optimizers, o: OptimConfig, step: int) -> None:
    """Write the config's learning rates and betas into every param group of the three optimizers.

    Why: `checkpoint.restore` loads the optimizers' state dicts, and those carry the lr and betas the
    checkpoint was written with. A run resumed under a changed config (Population Based Training's
    explore step, or a resume with a new lr) would silently keep the old ones: the config must be the
    truth. `step` is the restored step; F/C gets the lr its schedule gives that step.
    """
    for group, mult in zip(opts.f.param_groups, _f_lr_mults(o), strict=True):  # the checkpoint's multipliers too
        group["lr_mult"] = mult
    set_f_lr(opts.f, o, step)
    _set_betas(opts.f, (o.f_beta1, o.f_beta2))
    for opt, lr, betas in ((opts.g, o.g_lr, (o.g_beta1, o.g_beta2)), (opts.d, o.d_lr, (o.d_beta1, o.d_beta2))):
        if opt is None:  # source-only and oracle runs have no G or D
            continue
        for group in opt.param_groups:
            group["lr"] = lr
        _set_betas(opt, betas)


def _set_betas(opt: torch.optim.Optimizer, betas: tuple[float, float]) -> None:
    for group in opt.param_groups:
        group["betas"] = betas
