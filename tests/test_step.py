"""The training step: each of the three updates changes exactly one network; the step runs in every mode."""
from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch

from lsdseg.config import LossWeights, ModelConfig, OptimConfig
from lsdseg.models import build_nets
from lsdseg.optim import build_optimizers
from lsdseg.step import d_update, f_update, forward, g_update, train_step

pytestmark = pytest.mark.unit


def _setup(adapt=True):
    torch.manual_seed(0)
    nets = build_nets(ModelConfig(small_width=4, g_width=4, d_width=4), adapt)
    opts = build_optimizers(nets, OptimConfig())
    x_s, x_t = torch.rand(2, 3, 32, 64), torch.rand(2, 3, 32, 64)
    y_s = torch.randint(0, 19, (2, 32, 64))
    y_s[:, :4] = 255  # some ignored pixels
    return nets, opts, x_s, y_s, x_t


def _snapshot(nets):
    return {name: {k: v.detach().clone() for k, v in net.state_dict().items()} for name, net in nets.named().items()}


def _changed(before, nets):
    after = _snapshot(nets)
    return {name for name in before if any(not torch.equal(before[name][k], after[name][k]) for k in before[name])}


@pytest.mark.parametrize("update, opt_name, expected", [(d_update, "d", {"d"}), (g_update, "g", {"g"}), (f_update, "f", {"f"})])
def test_each_update_changes_only_its_network(update, opt_name, expected):
    """Each update on its own, from the forward passes alone: none depends on state another update left."""
    nets, opts, x_s, y_s, x_t = _setup()
    fw = forward(nets, x_s, y_s, x_t, nullcontext)
    if update is not d_update:
        nets.d.requires_grad_(False)
    if update is f_update:
        nets.g.requires_grad_(False)
    before = _snapshot(nets)
    update(nets, getattr(opts, opt_name), fw, LossWeights(), nullcontext)
    assert _changed(before, nets) == expected


def test_full_step_updates_all_three_and_restores_trainability():
    nets, opts, x_s, y_s, x_t = _setup()
    before = _snapshot(nets)
    losses = train_step(nets, opts, x_s, y_s, x_t, LossWeights(), nullcontext)
    assert _changed(before, nets) == {"f", "g", "d"}
    assert all(p.requires_grad for p in nets.g.parameters()) and all(p.requires_grad for p in nets.d.parameters())
    # the FCN-8s bilinear upsamplers never train
    assert not any(m.weight.requires_grad for m in (nets.f.upscore2, nets.f.upscore_pool4, nets.f.upscore8))
    names = {"loss_d_src_real", "loss_d_src_fake", "loss_d_tgt_real", "loss_d_tgt_fake", "loss_d_src_aux",
             "loss_g_src_adv", "loss_g_tgt_adv", "loss_g_src_aux", "loss_g_src_rec", "loss_g_tgt_rec",
             "loss_f_src_seg", "loss_f_src_adv", "loss_f_tgt_adv", "loss_f_src_aux"}
    assert names <= set(losses) and all(torch.isfinite(v) for v in losses.values())


def test_f_update_weights_the_terms_as_configured():
    nets, opts, x_s, y_s, x_t = _setup()
    fw = forward(nets, x_s, y_s, x_t, nullcontext)
    d_update(nets, opts.d, fw, LossWeights(), nullcontext)
    w = LossWeights(f_adv=0.3, f_aux=0.7)
    torch.manual_seed(1)
    losses = f_update(nets, opts.f, fw, w, nullcontext)
    expected = losses["loss_f_src_seg"] + 0.3 * (losses["loss_f_src_adv"] + losses["loss_f_tgt_adv"]) + 0.7 * losses["loss_f_src_aux"]
    assert torch.allclose(losses["loss_f"], expected)


def test_source_only_step_has_no_adversary():
    nets, opts, x_s, y_s, _ = _setup(adapt=False)
    assert nets.g is None and nets.d is None and opts.g is None
    losses = train_step(nets, opts, x_s, y_s, None, LossWeights(), nullcontext)
    assert set(losses) == {"loss_f_src_seg", "loss_f"}


def test_the_summed_convention_weighs_the_mean_terms_by_the_steps_own_shapes():
    """`loss.convention: summed` (the public code's): G's L1 over D's location count, F's adversarial and
    auxiliary terms over the pixels per D location; the step's totals are built from exactly those."""
    nets, opts, x_s, y_s, x_t = _setup()
    w = LossWeights(convention="summed")
    losses = train_step(nets, opts, x_s, y_s, x_t, w, nullcontext)
    locations = nets.d(x_s)[0].shape[-2:].numel()  # 4 x 8 at 32 x 64
    assert locations == 32
    g = w.g_adv * (losses["loss_g_src_adv"] + losses["loss_g_tgt_adv"]) + w.g_aux * losses["loss_g_src_aux"] \
        + w.g_rec / locations * (losses["loss_g_src_rec"] + losses["loss_g_tgt_rec"])
    f = losses["loss_f_src_seg"] + w.f_adv * locations / (32 * 64) * (losses["loss_f_src_adv"] + losses["loss_f_tgt_adv"]) \
        + w.f_aux * locations / (32 * 64) * losses["loss_f_src_aux"]
    assert torch.allclose(losses["loss_g"], g) and torch.allclose(losses["loss_f"], f)
