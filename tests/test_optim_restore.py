"""A resumed run trains with its config's learning rates and betas, not the checkpoint's.

`checkpoint.restore` loads the optimizers' state dicts, which carry the hyperparameters they were
written with; `apply_hparams` must put the config's back (PBT's explore step resumes under new ones).
"""
from __future__ import annotations

import pytest

from lsdseg import checkpoint, train
from lsdseg.checkpoint import latest_checkpoint
from lsdseg.models import build_nets
from lsdseg.optim import apply_hparams, build_optimizers
from lsdseg.train import run_training

pytestmark = pytest.mark.unit

NEW = {"f_lr": 3e-3, "f_lr_decay": 0.5, "f_lr_decay_every": 1, "f_bias_lr_mult": 3.0, "f_beta1": 0.8,
       "g_lr": 7e-4, "g_beta1": 0.5, "d_lr": 9e-4, "d_beta1": 0.6}


def _groups(opts) -> dict[str, list[tuple[float, tuple[float, float]]]]:
    """(lr, betas) of every param group of each optimizer."""
    return {name: [(g["lr"], tuple(g["betas"])) for g in opt.param_groups] for name, opt in vars(opts).items()}


@pytest.fixture
def written(tiny_cfg):
    """A 2-iteration LSD-seg run under the default optimizer config, and its checkpoint."""
    cfg = tiny_cfg(train={"iterations": 2, "eval_every": 2})
    run_training(cfg)
    path = latest_checkpoint(cfg.train.out_dir)
    assert path is not None
    return cfg, path


def _restored(cfg, path):
    nets = build_nets(cfg.model, adapt=True)
    opts = build_optimizers(nets, cfg.optim)
    state = checkpoint.load(path)
    checkpoint.restore(state, nets, opts)
    return opts, state["step"]


def test_restore_alone_keeps_the_checkpoints_hparams(written, tiny_cfg):
    old_cfg, path = written
    new_cfg = tiny_cfg(train={"iterations": 2, "eval_every": 2}, optim=NEW)
    opts, _ = _restored(new_cfg, path)
    old = build_optimizers(build_nets(old_cfg.model, adapt=True), old_cfg.optim)
    # the bug apply_hparams fixes: the new config's values are lost on restore
    assert _groups(opts) == _groups(old)


def test_apply_hparams_makes_the_config_the_truth(written, tiny_cfg):
    _, path = written
    new_cfg = tiny_cfg(train={"iterations": 2, "eval_every": 2}, optim=NEW)
    opts, step = _restored(new_cfg, path)
    assert step == 2
    apply_hparams(opts, new_cfg.optim, step)
    o = new_cfg.optim
    f_lr = o.f_lr * o.f_lr_decay  # iteration 2 with a decay every iteration: one decay applied
    assert _groups(opts) == {
        "f": [(f_lr, (o.f_beta1, o.f_beta2)), (f_lr * o.f_bias_lr_mult, (o.f_beta1, o.f_beta2))],
        "g": [(o.g_lr, (o.g_beta1, o.g_beta2))],
        "d": [(o.d_lr, (o.d_beta1, o.d_beta2))],
    }


def test_a_resumed_run_applies_its_config_at_the_restored_step(written, tiny_cfg, monkeypatch):
    _, path = written
    new_cfg = tiny_cfg(train={"iterations": 4, "eval_every": 2}, optim=NEW)
    calls = []

    def spy(opts, o, step):
        calls.append((o, step))
        apply_hparams(opts, o, step)

    monkeypatch.setattr(train, "apply_hparams", spy)
    result = run_training(new_cfg, resume=path)
    assert result.status == "completed"
    assert calls == [(new_cfg.optim, 2)]
