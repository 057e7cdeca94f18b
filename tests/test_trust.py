"""Which validator to trust, on constructed runs: a validator that follows target mIoU correlates +1 and
costs nothing; one that runs against it correlates -1 and picks the worst."""
from __future__ import annotations

import math

import pytest

from lsdseg.sweep.record import TrialRecord
from lsdseg.sweep.trust import FEW, assess, caveat, last_checkpoint_regret

pytestmark = pytest.mark.unit


def run(number: int, mious: list[float], validators: dict[str, list[float]]) -> TrialRecord:
    steps = range(10, 10 * len(mious) + 1, 10)
    return TrialRecord(run_id=f"r{number}", ray_trial_id=f"t{number}", phase="search", number=number, seed=0,
                       status="completed", params={}, history=tuple(zip(steps, mious, strict=False)),
                       scores=tuple(zip(steps, mious, strict=False)),
                       validators={k: tuple(zip(steps, v, strict=False)) for k, v in validators.items()})


RUNS = [run(0, [0.10, 0.30, 0.20], {"source_miou": [0.5, 0.7, 0.6], "entropy": [2.0, 1.0, 1.5]}),
        run(1, [0.15, 0.25, 0.40], {"source_miou": [0.55, 0.65, 0.8], "entropy": [1.0, 2.0, 3.0]})]


def test_a_validator_that_follows_miou_correlates_fully_and_costs_nothing():
    t = assess(RUNS, "source_miou", k=1)
    assert t.spearman == pytest.approx(1.0) and t.kendall == pytest.approx(1.0) and t.run_spearman == pytest.approx(1.0)
    assert t.regret_within == 0.0 and t.regret_across == 0.0 and (t.evaluations, t.runs, t.trials) == (6, 2, 2)
    assert t.random_regret == pytest.approx(0.40 - (0.20 + 0.40) / 2)  # a random pick of the two final mIoUs


def test_lower_is_better_validators_are_turned_before_they_are_judged():
    """Entropy falls where run 0's mIoU rises and rises with run 1's: it picks run 0's best checkpoint
    (0.30) but run 1's worst (0.15, regret 0.25); across trials it prefers run 0 (final 0.20, regret 0.20)."""
    t = assess(RUNS, "entropy", k=1)
    assert t.regret_within == pytest.approx((0.0 + 0.25) / 2)
    assert t.regret_across == pytest.approx(0.40 - 0.20)
    assert t.spearman < 0


def test_no_target_labels_means_nothing_to_judge():
    unlabelled = [run(0, [], {"entropy": [2.0, 1.0]})]
    assert assess(unlabelled, "entropy") is None
    assert math.isnan(last_checkpoint_regret(unlabelled))


def test_the_last_checkpoint_baseline():
    assert last_checkpoint_regret(RUNS) == pytest.approx((0.10 + 0.0) / 2)


def test_runs_are_judged_by_their_smoothed_values_with_a_bootstrap_interval():
    """Twelve runs whose smoothed validator tracks their smoothed mIoU exactly, while single evaluations
    wander: the run-level correlation is +1 with a tight interval, above the per-evaluation one."""
    runs = [run(i, [0.1 + 0.02 * i + w for w in (0.05, -0.05, 0.0)], {"source_miou": [0.5 + 0.02 * i + w for w in (-0.05, 0.05, 0.0)]})
            for i in range(12)]
    t = assess(runs, "source_miou", k=3)
    assert t.run_spearman == pytest.approx(1.0) and t.run_low > 0.9 and t.run_high == pytest.approx(1.0)
    assert t.spearman < t.run_spearman
    assert caveat([t]) == ""


def test_few_runs_carry_a_plain_caveat():
    t = assess(RUNS, "source_miou")
    assert t.runs < FEW and "Only 2 runs" in caveat([t])
