"""Loss units: values on tiny tensors, the ignore label, and the aux-label resize (the transpose bug)."""
from __future__ import annotations

import math

import pytest
import torch

from lsdseg.losses import domain_ce, labels_for_d, pixel_ce, reconstruction_l1
from lsdseg.models import DomainLabel

pytestmark = pytest.mark.unit


def test_pixel_ce_is_a_mean_over_labelled_pixels():
    logits = torch.zeros(1, 2, 1, 3)
    assert math.isclose(pixel_ce(logits, torch.tensor([[[0, 1, 255]]])).item(), math.log(2), rel_tol=1e-6)


def test_pixel_ce_with_no_labelled_pixel_is_zero_not_nan():
    logits = torch.zeros(1, 2, 2, 2, requires_grad=True)
    loss = pixel_ce(logits, torch.full((1, 2, 2), 255))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None


def test_domain_ce_prefers_the_right_domain():
    logits = torch.zeros(1, 4, 2, 2)
    logits[:, DomainLabel.TGT_REAL] = 5.0
    assert domain_ce(logits, DomainLabel.TGT_REAL) < domain_ce(logits, DomainLabel.SRC_REAL)


def test_labels_for_d_keeps_orientation_and_ignore():
    # a label map whose left half is class 1 and right half ignore; D's grid is wider than tall
    labels = torch.full((1, 16, 32), 255)
    labels[:, :, :16] = 1
    small = labels_for_d(labels, (4, 8))
    assert small.shape == (1, 4, 8)
    assert (small[:, :, :4] == 1).all() and (small[:, :, 4:] == 255).all()


def test_id_maps_are_resized_by_pixel_centres():
    """Down to D's grid and up to a label's resolution, each output pixel takes the id under its centre;
    PyTorch's plain "nearest" (the floor index) would give [0, 4] and [0, 0, 0, 1, 1, 1, 2, 2]."""
    from lsdseg.data.labels import resize_ids

    assert resize_ids(torch.arange(8)[None, None], (1, 2))[0, 0].tolist() == [2, 6]
    assert resize_ids(torch.arange(3)[None, None], (1, 8))[0, 0].tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert labels_for_d(torch.arange(8)[None, None].repeat(1, 8, 1), (1, 2))[0, 0].tolist() == [2, 6]


def test_reconstruction_l1_is_a_mean():
    assert math.isclose(reconstruction_l1(torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)).item(), 1.0)


def test_the_docstring_examples_hold():
    import doctest

    from lsdseg import losses

    result = doctest.testmod(losses, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 1 and result.failed == 0
