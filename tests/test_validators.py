"""The label-free validators on constructed inputs whose answers are known, and the evaluation that feeds
them: the target's labels never reach them, and a run selects its checkpoint by its objective."""
from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np
import pytest
import torch

from lsdseg import validators
from lsdseg.data import protocol_classes, val_dataset, val_loader
from lsdseg.evaluate import validate
from lsdseg.models import build_nets
from lsdseg.objectives import VALIDATORS
from lsdseg.train import run_training

pytestmark = pytest.mark.unit

C = 4


def one_hot(classes: list[int]) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(classes), C).double()


def test_entropy_is_zero_when_confident_and_log_c_when_uniform():
    assert validators.entropy(one_hot([0, 1, 2, 3])) == pytest.approx(0.0)
    assert validators.entropy(torch.full((10, C), 1 / C)) == pytest.approx(math.log(C))


def test_information_maximisation_rewards_confident_and_diverse_predictions():
    assert validators.information_maximisation(one_hot([0, 1, 2, 3] * 5)) == pytest.approx(math.log(C))  # confident, balanced
    assert validators.information_maximisation(one_hot([2] * 20)) == pytest.approx(0.0)  # confident, one class only
    assert validators.information_maximisation(torch.full((20, C), 1 / C)) == pytest.approx(0.0)  # uncertain


def test_soft_neighbourhood_density_counts_the_neighbours_a_point_is_close_to():
    n = 40
    # all predictions alike: every other point is an equally close neighbour
    assert validators.soft_neighbourhood_density(torch.full((n, C), 1 / C)) == pytest.approx(math.log(n - 1))
    # C tight clusters of n/C points: only the n/C - 1 points of one's own cluster count (at T = 0.05 the
    # others weigh e^-20 as much), so the density is ~log(n/C - 1)
    clustered = validators.soft_neighbourhood_density(one_hot(list(range(C)) * (n // C)))
    assert clustered == pytest.approx(math.log(n // C - 1), abs=1e-3)


def images(rows: int, per_image: int = 10) -> np.ndarray:
    return np.arange(rows) // per_image


def test_dev_is_the_plain_source_loss_when_the_domains_cannot_be_told_apart():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 5))
    losses = rng.uniform(size=400)
    dev = validators.deep_embedded_validation(features, losses, images(400), features.copy(), images(400), seed=3)
    assert dev == pytest.approx(losses.mean(), abs=0.05)


def test_dev_estimates_the_loss_where_the_target_lies():
    """Source features in two modes; the target only in the second, where the loss is high: DEV moves from
    the source's mean loss (0.5) towards the target's (0.9)."""
    rng = np.random.default_rng(0)
    modes = np.repeat(rng.integers(0, 2, size=200), 10)  # one mode per image
    source = rng.normal(size=(2000, 2)) * 0.3 + np.where(modes[:, None] == 1, 2.0, -2.0)
    losses = np.where(modes == 1, 0.9, 0.1) + rng.normal(scale=0.01, size=2000)
    target = rng.normal(size=(1000, 2)) * 0.3 + 2.0
    assert validators.deep_embedded_validation(source, losses, images(2000), target, images(1000)) == pytest.approx(0.9, abs=0.05)


def test_dev_splits_rows_by_image():
    """The classifier never sees an image whose rows it weights: every split keeps an image's rows together."""
    ids = np.repeat(np.arange(30), 7)
    chosen = validators._image_split(ids, 0.5, np.random.default_rng(0))
    assert not set(ids[chosen]) & set(ids[~chosen])
    assert len(set(ids[chosen])) == 15


def test_dev_weights_are_normalised_and_clipped():
    """A classifier almost sure that a few source pixels are target-like gives them odds of up to 1e6: no row
    may count for more than MAX_WEIGHT average rows, and the class prior does not matter."""
    p = np.concatenate([np.full(95, 0.3), np.linspace(0.9, 1.0, 5)])
    w = validators.importance_weights(p)
    assert w.max() == validators.MAX_WEIGHT and w.min() > 0
    assert w[:95] == pytest.approx(np.full(95, w[0]))
    assert validators.importance_weights(np.full(10, 0.2)) == pytest.approx(np.ones(10))


def test_validation_never_reads_target_labels(tiny_cfg):
    """The validators are the same with and without the target's labels; only target mIoU needs them."""
    cfg = tiny_cfg()
    run_training(cfg)  # writes the benchmark
    f = build_nets(cfg.model, adapt=False).f
    source = val_loader(val_dataset(cfg.data.source, cfg.data, "source_val"), cfg.data)
    runs = [validate(f, val_loader(val_dataset(cfg.data.target_val, cfg.data, labelled=labelled), cfg.data), source,
                     torch.device("cpu"), nullcontext, protocol_classes(cfg.data), labelled) for labelled in (True, False)]
    assert runs[0].validators == runs[1].validators
    assert runs[0].target is not None and runs[1].target is None
    assert set(runs[0].validators) == set(VALIDATORS)


def test_a_run_selects_its_checkpoint_by_its_objective(tiny_cfg):
    cfg = tiny_cfg(train={"iterations": 6, "eval_every": 2, "objective": "entropy"})
    result = run_training(cfg)
    entropies = [h.validators["entropy"] for h in result.history]
    assert result.selected.step == result.history[int(np.argmin(entropies))].step  # lower entropy is better
    assert result.selected.objective == min(entropies)
    selected = torch.load(f"{cfg.train.out_dir}/checkpoints/selected/checkpoint.pt", weights_only=True)
    assert selected["step"] == result.selected.step
