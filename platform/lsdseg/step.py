"""One LSD-seg training iteration: D update, then G update, then F/C update (paper section 3).

Fixes the public code's stale-graph bug: it stepped D (and G) and then back-propagated G's and F's
losses through a graph built with the pre-step weights (PyTorch 0.2 let `.data` updates pass; current
PyTorch rightly refuses). Here D is re-run after its step for G's and F's losses, and G is re-run after
its step for F's loss. G's update sees F's features detached, and every network not being updated is
frozen (requires_grad off), so each update changes exactly one network.

Target labels never enter this step: the target batch is images only.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Callable

import torch

from lsdseg.config import LossWeights
from lsdseg.losses import domain_ce, in_means, labels_for_d, pixel_ce, reconstruction_l1
from lsdseg.models import DomainLabel, Nets
from lsdseg.models.blocks import Features
from lsdseg.optim import Optimizers

Autocast = Callable[[], AbstractContextManager]


@dataclass
class Forward:
    """What every update needs from the forward passes of one iteration."""

    x_s: torch.Tensor
    y_s: torch.Tensor
    x_t: torch.Tensor
    scores_s: torch.Tensor
    feat_s: Features
    feat_t: Features


def _trainable(*nets: torch.nn.Module, on: bool) -> None:
    """Freeze/unfreeze G or D (they have no permanently frozen parameters; F is never toggled)."""
    for net in nets:
        net.requires_grad_(on)


def _step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _detached(feats: Features) -> Features:
    return Features(*(f.detach() for f in feats))


def _both(fn: Callable, *pairs: tuple[torch.Tensor, torch.Tensor]) -> list[tuple[torch.Tensor, ...]]:
    """Run `fn` once on source and target concatenated along the batch, and split its outputs again.

    Exact, since G and D normalise per sample (InstanceNorm); one call instead of two halves the kernel
    launches, which dominate on a CPU with small networks.
    """
    n = pairs[0][0].shape[0]
    out = fn(*(torch.cat(p) for p in pairs))
    return [(o[:n], o[n:]) for o in (out if isinstance(out, tuple) else (out,))]


def _reconstruct(g, feat_s: Features, feat_t: Features, size) -> tuple[torch.Tensor, torch.Tensor]:
    """G(F(x_s)), G(F(x_t)) in one call."""
    n = feat_s.fc7.shape[0]
    fake = g(Features(*(torch.cat(p) for p in zip(feat_s, feat_t, strict=False))), size)
    return fake[:n], fake[n:]


def d_update(nets: Nets, opt: torch.optim.Optimizer, fw: Forward, w: LossWeights, autocast: Autocast) -> dict[str, torch.Tensor]:
    """L_D: real and reconstructed images of both domains into their 4 classes, plus aux classes of real source."""
    size = fw.x_s.shape[-2:]
    with torch.no_grad(), autocast():  # G is not trained here: its output is just D's fake input
        fake_s, fake_t = _reconstruct(nets.g, _detached(fw.feat_s), _detached(fw.feat_t), size)
    with autocast():
        (d_src, d_tgt), (c_src, _) = _both(nets.d, (torch.cat([fw.x_s, fake_s]), torch.cat([fw.x_t, fake_t])))
        n = fw.x_s.shape[0]
        losses = {
            "loss_d_src_real": domain_ce(d_src[:n], DomainLabel.SRC_REAL),
            "loss_d_src_fake": domain_ce(d_src[n:], DomainLabel.SRC_FAKE),
            "loss_d_tgt_real": domain_ce(d_tgt[:n], DomainLabel.TGT_REAL),
            "loss_d_tgt_fake": domain_ce(d_tgt[n:], DomainLabel.TGT_FAKE),
            "loss_d_src_aux": pixel_ce(c_src[:n], labels_for_d(fw.y_s, c_src.shape[-2:])),
        }
    adv = losses["loss_d_src_real"] + losses["loss_d_src_fake"] + losses["loss_d_tgt_real"] + losses["loss_d_tgt_fake"]
    losses["loss_d"] = adv + w.d_aux * losses["loss_d_src_aux"]
    _step(opt, losses["loss_d"])
    return losses


def g_update(nets: Nets, opt: torch.optim.Optimizer, fw: Forward, w: LossWeights, autocast: Autocast) -> dict[str, torch.Tensor]:
    """L_G: reconstructions classified as real of their own domain, aux classes kept, L1 to the input."""
    with autocast():
        fake_s, fake_t = _reconstruct(nets.g, _detached(fw.feat_s), _detached(fw.feat_t), fw.x_s.shape[-2:])
        (d_src_fake, d_tgt_fake), (c_src_fake, _) = _both(nets.d, (fake_s, fake_t))  # D as stepped just now
        losses = {
            "loss_g_src_adv": domain_ce(d_src_fake, DomainLabel.SRC_REAL),
            "loss_g_tgt_adv": domain_ce(d_tgt_fake, DomainLabel.TGT_REAL),
            "loss_g_src_aux": pixel_ce(c_src_fake, labels_for_d(fw.y_s, c_src_fake.shape[-2:])),
            "loss_g_src_rec": reconstruction_l1(fake_s, fw.x_s),
            "loss_g_tgt_rec": reconstruction_l1(fake_t, fw.x_t),
        }
    w = in_means(w, fw.x_s.shape[-2:].numel(), d_src_fake.shape[-2:].numel())
    losses["loss_g"] = (
        w.g_adv * (losses["loss_g_src_adv"] + losses["loss_g_tgt_adv"])
        + w.g_aux * losses["loss_g_src_aux"]
        + w.g_rec * (losses["loss_g_src_rec"] + losses["loss_g_tgt_rec"])
    )
    _step(opt, losses["loss_g"])
    return losses


def f_update(nets: Nets, opt: torch.optim.Optimizer, fw: Forward, w: LossWeights, autocast: Autocast) -> dict[str, torch.Tensor]:
    """L_F = L_seg + alpha * L_aux + beta * cross-domain adversarial terms (source-only: L_seg alone)."""
    losses = {"loss_f_src_seg": pixel_ce(fw.scores_s, fw.y_s)}
    total = losses["loss_f_src_seg"]
    if nets.g is not None:
        with autocast():
            fake_s, fake_t = _reconstruct(nets.g, fw.feat_s, fw.feat_t, fw.x_s.shape[-2:])  # G as stepped just now
            (d_src_fake, d_tgt_fake), (c_src_fake, _) = _both(nets.d, (fake_s, fake_t))
            # Cross-domain fooling: source embeddings should look like target, and vice versa.
            losses["loss_f_src_adv"] = domain_ce(d_src_fake, DomainLabel.TGT_REAL)
            losses["loss_f_tgt_adv"] = domain_ce(d_tgt_fake, DomainLabel.SRC_REAL)
            losses["loss_f_src_aux"] = pixel_ce(c_src_fake, labels_for_d(fw.y_s, c_src_fake.shape[-2:]))
        w = in_means(w, fw.x_s.shape[-2:].numel(), d_src_fake.shape[-2:].numel())
        total = total + w.f_adv * (losses["loss_f_src_adv"] + losses["loss_f_tgt_adv"]) + w.f_aux * losses["loss_f_src_aux"]
    losses["loss_f"] = total
    _step(opt, total)
    return losses


def forward(nets: Nets, x_s: torch.Tensor, y_s: torch.Tensor, x_t: torch.Tensor | None, autocast: Autocast) -> Forward:
    """F on both domains, once: F is updated last, so this graph stays valid for the F update."""
    with autocast():
        if x_t is None:
            scores_s, feat_s = nets.f(x_s)
            return Forward(x_s, y_s, x_t, scores_s, feat_s, feat_s)
        n = x_s.shape[0]
        scores, feats = nets.f(torch.cat([x_s, x_t]))  # F has no batch statistics: one call is exact
    return Forward(x_s, y_s, x_t, scores[:n], Features(*(f[:n] for f in feats)), Features(*(f[n:] for f in feats)))


def train_step(
    nets: Nets, opts: Optimizers, x_s: torch.Tensor, y_s: torch.Tensor, x_t: torch.Tensor | None,
    w: LossWeights, autocast: Autocast,
) -> dict[str, torch.Tensor]:
    """One iteration; returns every loss term (detached). Without G and D it is plain supervised training."""
    fw = forward(nets, x_s, y_s, x_t, autocast)
    losses: dict[str, torch.Tensor] = {}
    if nets.g is not None:
        losses |= d_update(nets, opts.d, fw, w, autocast)  # (1) D; G runs under no_grad, F's features unused
        _trainable(nets.d, on=False)
        losses |= g_update(nets, opts.g, fw, w, autocast)  # (2) G; F's features detached, D frozen
        _trainable(nets.g, on=False)
    losses |= f_update(nets, opts.f, fw, w, autocast)  # (3) F/C; G and D frozen
    if nets.g is not None:
        _trainable(nets.g, nets.d, on=True)
    return {k: v.detach() for k, v in losses.items()}
