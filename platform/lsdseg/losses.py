"""Loss terms of LSD-seg as small pure functions (paper eqs. for L_D, L_G, L_F; reference section 2).

Convention: every term is a MEAN over its valid pixels or D locations. The public code instead summed
each cross-entropy over pixels (per image) next to a mean L1, so its nominal weights hid the real balance.
How its defaults map onto this convention (D grid = 1/64 of the crop's pixels, 3,200 locations at 320x640):

    F: sum-CE L_seg (~204,800 px) + 0.1 * sum-CE adv/aux (3,200 locs). Divided by the pixel count (Adam is
       invariant to a global scale): L_seg + 0.1/64 * (adv + aux)  ->  f_adv = f_aux = 0.0015625
    G: 1 * sum-CE aux + 0.1 * sum-CE adv + 1 * mean-L1. Divided by 3,200:
       aux + 0.1 * adv + (1/3,200) * L1  ->  g_aux = 1, g_adv = 0.1, g_rec = 0.0003125
    D: every term a sum over the same 3,200 locations  ->  d_aux = 1

`configs/public_code_weights.yaml` holds exactly these; our defaults are the paper's nominal weights
read in the mean convention (0.1, 0.1; 0.1, 1, 1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

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
