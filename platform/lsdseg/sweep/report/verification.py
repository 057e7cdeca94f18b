"""The report's selection and verification section: the race on the selection seeds (the seeds that chose
the candidate: their differences are optimistic) and each verification look on held-out seeds, with the
decision in words a reader can act on.
"""
from __future__ import annotations

import math
from typing import Optional

from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from lsdseg.objectives import PERCENT, UNITS, Objective, shown, text
from lsdseg.sweep.report.fmt import MINUS
from lsdseg.sweep.results import LookResult, Selection, SweepResults
from lsdseg.sweep.verify import Paired

CAPTION = ("Each point is one training run on one held-out seed; a line joins the candidate's and the defaults' runs "
           "on the same seed, whose difference is what the decision reads. With a few seeds the interval is wide: a "
           "configuration not shown to be better may still be, and the leaderboard says how many seeds would tell.")


def interval(p: Optional[Paired], objective: Objective = "target_miou") -> str:
    """'+2.1 [−1.0, +5.2] (3 seeds, 95 % interval)' in the objective's units."""
    if p is None:
        return "-"
    low, high = sorted((shown(objective, p.low), shown(objective, p.high)))
    return (f"{_signed(objective, shown(objective, p.mean))} [{_signed(objective, low)}, {_signed(objective, high)}] "
            f"({p.n} seeds, {(1 - 2 * p.alpha) * 100:g} % interval)")


def _signed(objective: Objective, value: float) -> str:
    return (f"{value:+.1f}" if objective in PERCENT else f"{value:+.3g}").replace("-", MINUS)


def race_rows(results: SweepResults) -> tuple[list[int], list[dict[str, object]]]:
    """(the selection seeds, one row per configuration that has a score on one of them)."""
    rows: list[Selection] = results.selection
    seeds = sorted({s for r in rows for s in r.scores})
    candidate = results.candidate.number if results.candidate else None
    return seeds, [{"label": r.label, "candidate": not r.defaults and r.number == candidate,
                    "scores": [text(results.objective, r.scores[s]) if s in r.scores else "" for s in seeds],
                    "versus": "" if r.defaults else interval(r.versus_defaults, results.objective)} for r in rows]


def look_rows(results: SweepResults) -> list[dict[str, object]]:
    out = []
    for look in results.looks if results.candidate is not None else []:
        d = look.decision
        out.append({"look": look.look, "seeds": ", ".join(map(str, look.seeds)), "iterations": look.iterations, "alpha": f"{look.alpha:g}",
                    "candidate": [text(results.objective, look.candidate.get(s, math.nan)) for s in look.seeds],
                    "defaults": [text(results.objective, look.defaults.get(s, math.nan)) for s in look.seeds],
                    "versus": interval(d.evidence, results.objective) if d else "-",
                    "verdict": (("Shipped: " if d.ship_candidate else "Not shipped: ") + d.reason + ".") if d else "Incomplete."})
    return out


def figure(results: SweepResults) -> Figure | str:
    looks: list[LookResult] = [look for look in results.looks if look.candidate and look.defaults] if results.candidate else []
    if not looks:
        return "Not shown: nothing was verified (the race kept the default weights, or verification was off)."
    objective = results.objective
    fig, axes = plt.subplots(1, len(looks), figsize=(3.2 * len(looks) + 1.5, 3.4), squeeze=False, sharey=True)
    for ax, look in zip(axes[0], looks, strict=False):
        for seed in look.seeds:
            pair = [shown(objective, look.defaults.get(seed, math.nan)), shown(objective, look.candidate.get(seed, math.nan))]
            ax.plot([0, 1], pair, "o-", alpha=0.7, label=f"seed {seed}")
        ax.set_xticks([0, 1], ["default weights", results.candidate_label])
        ax.set_xlim(-0.4, 1.4)
        ax.set_title(f"look {look.look}: {look.iterations} iterations", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(f"final score ({UNITS[objective]})")
    fig.suptitle("Verification on held-out seeds")
    return fig
