"""The report's "Which validator to trust" section: each label-free validator against target mIoU.

Where the target has labels, the sweep's own runs show which validator would have chosen well; on a real
target without labels, this section cannot be computed, and says so (measure it on a labelled proxy).
"""
from __future__ import annotations

import math
from typing import Sequence

from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from lsdseg.objectives import UNITS, VALIDATORS
from lsdseg.sweep.record import TrialRecord
from lsdseg.sweep.report.fmt import percent
from lsdseg.sweep.trust import Trust, last_checkpoint_regret, pairs

CAPTION = ("Each point is one evaluation of one run of this sweep; the table's run-level correlation is the one a "
           "sweep's selection relies on. The runs share a base config and differ in loss weights, learning rates and "
           "seeds, so the correlations say how a validator ranks this sweep's runs, not models in general; with few runs "
           "they are themselves noisy (Musgrave et al., arXiv 2208.07360: no validator is reliable everywhere).")
UNLABELLED = ("Not computed: the target validation split has no labels in this sweep (data.target_labels=false), so "
              "nothing tells how a validator tracks target mIoU. Measure it on a problem with target labels, e.g. "
              "the built-in benchmark (python bench/validators.py).")


def _number(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) else f"{value:+.{digits}f}"


def rows(trusts: Sequence[Trust]) -> list[dict[str, str]]:
    """One row per validator, best run-level correlation first."""
    ordered = sorted(trusts, key=lambda t: -math.inf if math.isnan(t.run_spearman) else t.run_spearman, reverse=True)
    return [{"name": t.name, "unit": UNITS[t.name],
             "runs": f"{_number(t.run_spearman)} [{_number(t.run_low)}, {_number(t.run_high)}]",
             "spearman": _number(t.spearman), "kendall": _number(t.kendall),
             "within": percent(t.regret_within), "across": percent(t.regret_across), "random": percent(t.random_regret),
             "n": f"{t.runs} runs, {t.evaluations} evaluations, {t.trials} completed search trials"} for t in ordered]


def baseline(records: Sequence[TrialRecord]) -> str:
    regret = last_checkpoint_regret(records)
    return "" if math.isnan(regret) else (f"Without any selection, a run's last checkpoint is {percent(regret)} mIoU points "
                                          "below its best evaluation on average.")


def figure(records: Sequence[TrialRecord]) -> Figure | str:
    """Validator (x, in its own units) against target mIoU (y), one panel per validator."""
    shown = [name for name in VALIDATORS if any(pairs(r, name) for r in records)]
    if not shown:
        return UNLABELLED
    fig, axes = plt.subplots(1, len(shown), figsize=(3.1 * len(shown), 3.0), sharey=True, squeeze=False)
    miou = {(r.run_id, step): v for r in records for step, v in r.history}
    for ax, name in zip(axes[0], shown, strict=False):
        points = [(v, miou[(r.run_id, step)] * 100) for r in records for step, v in r.validators.get(name, ())
                  if (r.run_id, step) in miou and not math.isnan(v)]
        ax.scatter(*zip(*points, strict=False), s=9, alpha=0.6)
        ax.set(xlabel=f"{name} ({UNITS[name]})")
        ax.xaxis.label.set_fontsize(7)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("target mIoU (%)")
    fig.suptitle("Validators against target mIoU, every evaluation")
    return fig
