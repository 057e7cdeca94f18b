"""Which validator to trust: how well each label-free validator tracks target mIoU on this sweep.

Only where the target has labels (the built-in benchmark, or a real target with its labels) can this be
measured, and a researcher cannot know in advance which validator works on their problem (Musgrave,
Belongie, Lim, arXiv 2208.07360: none is reliable everywhere). For each validator, over the sweep's runs:

- at the level of runs, what a sweep selects on: each run's smoothed validator (the mean of its last k
  evaluations, turned so that higher is better) against its smoothed target mIoU, Spearman's rho with a
  bootstrap 95 % interval over runs;
- at the level of evaluations (progress, checkpoint and configuration mixed): Spearman's rho and Kendall's
  tau over every evaluation of every run;
- regret within a run: the best target mIoU among its evaluations minus the mIoU of the evaluation the
  validator picks, averaged over runs (what checkpoint selection by it loses);
- regret across trials: the best final target mIoU among the completed search trials minus that of the
  trial the validator ranks first, beside the regret of a random pick among them (the baseline a validator
  must beat to be worth anything).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import stats

from lsdseg.objectives import VALIDATORS, oriented, smoothed
from lsdseg.sweep.record import TrialRecord, smoothed_curve

FEW = 8  # below this many runs a correlation says little, and the report says so
BOOTSTRAP = 2000


@dataclass(frozen=True)
class Trust:
    name: str
    runs: int  # runs with both curves: the run-level correlation's sample
    run_spearman: float
    run_low: float  # bootstrap 95 % interval of the run-level Spearman
    run_high: float
    evaluations: int  # (validator, target mIoU) pairs of the evaluation-level correlations
    spearman: float
    kendall: float
    regret_within: float  # mean over runs, mIoU as a fraction
    regret_across: float  # NaN with fewer than 2 completed search trials
    random_regret: float  # a random pick's expected regret across the same trials
    trials: int


def pairs(record: TrialRecord, name: str) -> list[tuple[int, float, float]]:
    """(iteration, oriented validator, target mIoU) at every evaluation that has both."""
    miou = dict(record.history)
    return [(step, oriented(name, v), miou[step]) for step, v in record.validators.get(name, ())
            if step in miou and not (math.isnan(v) or math.isnan(miou[step]))]


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    if len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def _bootstrap(x: list[float], y: list[float], seed: int = 0) -> tuple[float, float]:
    """A percentile 95 % interval of Spearman's rho, resampling runs."""
    rng = np.random.default_rng(seed)
    x_, y_ = np.asarray(x), np.asarray(y)
    draws = [_spearman(x_[i], y_[i]) for i in (rng.integers(0, len(x), len(x)) for _ in range(BOOTSTRAP))]
    draws = [d for d in draws if not math.isnan(d)]
    if len(draws) < BOOTSTRAP // 2:
        return math.nan, math.nan
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def _regret_within(points: list[tuple[int, float, float]]) -> float:
    picked = max(points, key=lambda p: p[1])  # the earliest of equals
    return max(p[2] for p in points) - picked[2]


def assess(records: Sequence[TrialRecord], name: str, k: int = 3) -> Optional[Trust]:
    """How `name` tracks target mIoU over `records` (every run of the sweep); `k`: the smoothing."""
    paired = [(r, run) for r in records if (run := pairs(r, name))]
    per_run = [run for _, run in paired]
    flat = [p for run in per_run for p in run]
    if len(flat) < 3:
        return None
    x, y = [p[1] for p in flat], [p[2] for p in flat]
    run_x = [smoothed([p[1] for p in run], k) for run in per_run]
    run_y = [smoothed([p[2] for p in run], k) for run in per_run]
    low, high = _bootstrap(run_x, run_y) if len(per_run) >= 3 else (math.nan, math.nan)
    finals = [(smoothed([p[1] for p in run], k), smoothed_curve(r.history, k)) for r, run in paired
              if r.phase == "search" and r.status == "completed"]
    best = max((f[1] for f in finals), default=math.nan)
    return Trust(name, len(per_run), _spearman(run_x, run_y), low, high, len(flat), _spearman(x, y),
                 math.nan if math.isnan(_spearman(x, y)) else float(stats.kendalltau(x, y).statistic),
                 statistics.fmean(_regret_within(run) for run in per_run),
                 best - max(finals, key=lambda f: f[0])[1] if len(finals) > 1 else math.nan,
                 best - statistics.fmean(f[1] for f in finals) if len(finals) > 1 else math.nan, len(finals))


def assess_all(records: Sequence[TrialRecord], k: int = 3) -> list[Trust]:
    return [t for t in (assess(records, name, k) for name in VALIDATORS) if t is not None]


def last_checkpoint_regret(records: Sequence[TrialRecord]) -> float:
    """The baseline of no selection: a run's best target mIoU minus its last one, averaged over runs."""
    runs = [r.history for r in records if r.history]
    return statistics.fmean(max(v for _, v in h) - h[-1][1] for h in runs) if runs else math.nan


def caveat(trusts: Sequence[Trust]) -> str:
    """A plain warning when the runs are too few for the correlations to mean much."""
    runs = max((t.runs for t in trusts), default=0)
    if runs >= FEW:
        return ""
    return (f"Only {runs} runs: a correlation over so few says little (see its interval), and a validator's ranking here may "
            "not hold on the next sweep. Measure it over more runs (python bench/validators.py) before trusting one.")
