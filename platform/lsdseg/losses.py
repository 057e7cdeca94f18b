"""Loss terms of LSD-seg as small pure functions (paper eqs. for L_D, L_G, L_F; reference section 2).

Every term is computed as a MEAN over its valid pixels or D locations. The public code instead summed each
cross-entropy over pixels or D locations (per image) next to a mean L1, so its nominal weights hid the real
balance. `in_means` turns weights given in its convention (`loss.convention: summed`) into weights on
means, from the shapes of the step itself (a crop of P pixels, a D grid of N locations, N = P/64 for D's
stride 8):

    F: sum-CE L_seg (P px) + f_adv * sum-CE adv (N locs) + f_aux * sum-CE aux (N locs). Divided by P (Adam
       is invariant to a global scale): L_seg + f_adv * N/P * adv + f_aux * N/P * aux.
    G: g_aux * sum-CE aux + g_adv * sum-CE adv + g_rec * mean-L1. Divided by N:
       g_aux * aux + g_adv * adv + g_rec / N * L1.
    D: every term a sum over the same N locations: unchanged.

With the public code's flags (0.1, 0.1; 0.1, 1, 1; 1), at its 320x640 crop (N = 3,200): f_adv = f_aux =
0.1/64, g_rec = 1/3,200; at the paper's 512x1024 (N = 8,192): g_rec = 1/8,192. Our `mean` defaults are
the same nominal values read as weights on means.
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from lsdseg.config import LossWeights
from lsdseg.data.labels import IGNORE, resize_ids
from lsdseg.models.discriminator import DomainLabel


def pixel_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over labelled pixels; 0 (with a graph) when no pixel is labelled.

    logits BxKxHxW, labels BxHxW int64 with IGNORE = 255 -> scalar.
    >>> pixel_ce(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 255]]])).item()  # log 2
    0.6931...
    """
    valid = labels != IGNORE
    if not bool(valid.any()):
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE)


def domain_ce(d_logits: torch.Tensor, label: DomainLabel) -> torch.Tensor:
    """Mean 4-way cross-entropy of D's patch logits (Bx4xhxw) against one domain label everywhere."""
    target = torch.full((d_logits.shape[0], *d_logits.shape[2:]), int(label), device=d_logits.device, dtype=torch.long)
    return F.cross_entropy(d_logits.float(), target)


def labels_for_d(labels: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Source labels (BxHxW) resized to D's output grid (h, w) for the auxiliary head, by the pixel centres
    (`labels.resize_ids`); IGNORE pixels stay ignored.

    Fixes the public code's bug: it called PIL's resize with (h, w), which PIL reads as (width, height),
    and copied the transposed result into an (h, w) slot, scrambling D's auxiliary targets.
    """
    return resize_ids(labels, size)


def reconstruction_l1(reconstruction: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between G's output and the input image, both in [0, 1]."""
    return F.l1_loss(reconstruction.float(), image.float())


def in_means(w: LossWeights, pixels: int, locations: int) -> LossWeights:
    """The weights to apply to the mean terms, for a crop of `pixels` and D's grid of `locations` (module
    docstring): `w` itself in the `mean` convention; converted from the public code's in `summed`."""
    if w.convention == "mean":
        return w
    return replace(w, convention="mean", f_adv=w.f_adv * locations / pixels, f_aux=w.f_aux * locations / pixels,
                   g_rec=w.g_rec / locations)
