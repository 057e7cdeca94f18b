"""Which validator to trust: how well each label-free validator tracks target mIoU on this sweep.

Only where the target has labels (the built-in benchmark, or a real target with its labels) can this be
measured, and a researcher cannot know in advance which validator works on their problem (Musgrave,
Belongie, Lim, arXiv 2208.07360: none is reliable everywhere). For each validator, over the sweep's runs:

- rank correlation with target mIoU (Spearman's rho and Kendall's tau) over every evaluation of every run,
  the validator turned so that higher is better (a validator that tracks mIoU has a positive correlation);
- regret within a run: the best target mIoU among its evaluations minus the mIoU of the evaluation the
  validator picks, averaged over runs (what checkpoint selection by it loses);
- regret across trials: the best final target mIoU among the completed search trials minus that of the
  trial the validator's final value ranks first (what configuration selection by it loses).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Optional, Sequence

from scipy import stats

from lsdseg.objectives import VALIDATORS, oriented
from lsdseg.sweep.record import TrialRecord


@dataclass(frozen=True)
class Trust:
    name: str
    evaluations: int  # (validator, target mIoU) pairs the correlations are computed over
    spearman: float
    kendall: float
    regret_within: float  # mean over runs, mIoU as a fraction
    runs: int
    regret_across: float  # NaN with fewer than 2 completed search trials
    trials: int


def pairs(record: TrialRecord, name: str) -> list[tuple[int, float, float]]:
    """(iteration, oriented validator, target mIoU) at every evaluation that has both."""
    miou = dict(record.history)
    return [(step, oriented(name, v), miou[step]) for step, v in record.validators.get(name, ())
            if step in miou and not (math.isnan(v) or math.isnan(miou[step]))]


def _regret_within(points: list[tuple[int, float, float]]) -> float:
    picked = max(points, key=lambda p: p[1])  # the earliest of equals
    return max(p[2] for p in points) - picked[2]


def _regret_across(finals: list[tuple[float, float]]) -> float:
    picked = max(finals, key=lambda f: f[0])
    return max(f[1] for f in finals) - picked[1]


def assess(records: Sequence[TrialRecord], name: str) -> Optional[Trust]:
    """How `name` tracks target mIoU over `records` (every run: search trials and confirmation runs)."""
    paired = [(r, run) for r in records if (run := pairs(r, name))]
    per_run = [run for _, run in paired]
    flat = [p for run in per_run for p in run]
    if len(flat) < 3:
        return None
    x, y = [p[1] for p in flat], [p[2] for p in flat]
    constant = len(set(x)) < 2 or len(set(y)) < 2
    finals = [(run[-1][1], run[-1][2]) for r, run in paired if r.phase == "search" and r.status == "completed"]
    return Trust(name, len(flat),
                 math.nan if constant else float(stats.spearmanr(x, y).statistic),
                 math.nan if constant else float(stats.kendalltau(x, y).statistic),
                 statistics.fmean(_regret_within(run) for run in per_run), len(per_run),
                 _regret_across(finals) if len(finals) > 1 else math.nan, len(finals))


def assess_all(records: Sequence[TrialRecord]) -> list[Trust]:
    return [t for t in (assess(records, name) for name in VALIDATORS) if t is not None]


def last_checkpoint_regret(records: Sequence[TrialRecord]) -> float:
    """The baseline of no selection: a run's best target mIoU minus its last one, averaged over runs."""
    runs = [r.history for r in records if r.history]
    return statistics.fmean(max(v for _, v in h) - h[-1][1] for h in runs) if runs else math.nan
