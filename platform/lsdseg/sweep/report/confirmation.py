"""The report's confirmation section: what the fresh seeds say about each confirmed configuration.

The search ranks single-seed trials, and the best of them is biased upwards (the winner's curse); the
confirmation retrains the top configurations and the default weights on the same seeds. This module shows
every seed's score, not only the mean, and compares each configuration with the defaults seed by seed, in
words a reader can act on: reliably better, reliably worse, or not distinguishable with these seeds.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from lsdseg.sweep.confirm import DEFAULTS_RANK, Confirmed, Paired
from lsdseg.objectives import DIRECTION, PERCENT, UNITS, Objective, shown, text
from lsdseg.sweep.report.fmt import MINUS

MARKERS = "osD^vP*X"  # one per seed, so a seed's points can be followed from row to row
CAPTION = ("Each point is one training run on one seed; with a few seeds a 95 % interval is wide, and a configuration "
           "that is not reliably better than the default weights may only have been lucky in the search.")


def is_winner(c: Confirmed, winner: Optional[Confirmed]) -> bool:
    return winner is not None and c.candidate.rank == winner.candidate.rank


def label(c: Confirmed, winner: Optional[Confirmed]) -> str:
    return c.candidate.label + (" (winner)" if is_winner(c, winner) else "")


def interval(p: Optional[Paired], objective: Objective = "target_miou") -> str:
    """'+2.1 [−1.0, +5.2] (3 seeds)': the mean paired difference to the defaults and its 95 % t interval,
    in the objective's units (for a lower-is-better objective, a better configuration's difference is negative)."""
    if p is None:
        return "-"
    low, high = sorted((shown(objective, p.low), shown(objective, p.high)))
    return f"{_signed(objective, shown(objective, p.mean))} [{_signed(objective, low)}, {_signed(objective, high)}] ({p.n} seeds)"


def _signed(objective: Objective, value: float) -> str:
    return (f"{value:+.1f}" if objective in PERCENT else f"{value:+.3g}").replace("-", MINUS)


def verdict(c: Confirmed) -> str:
    """One plain sentence on the paired difference to the default weights."""
    if c.candidate.rank == DEFAULTS_RANK:
        return "The reference every other configuration is compared with, seed by seed."
    p = c.versus_defaults
    if p is None:
        return "No comparison: this configuration or the default weights did not complete every seed."
    if p.low > 0:
        return f"Reliably better than the default weights: the 95 % interval over {p.n} seeds is above 0."
    if p.high < 0:
        return f"Reliably worse than the default weights: the 95 % interval over {p.n} seeds is below 0."
    return f"Not distinguishable from the default weights with these {p.n} seeds: the 95 % interval includes 0."


def rows(confirmed: Sequence[Confirmed], winner: Optional[Confirmed], objective: Objective = "target_miou") -> list[dict[str, object]]:
    """The confirmation table: one row per configuration, in the order it was confirmed (defaults first)."""
    return [{"label": label(c, winner), "winner": is_winner(c, winner),
             "seeds": ", ".join(f"{s}: {text(objective, v)}" for s, v in sorted(c.scores.items())),
             "mean": text(objective, c.mean), "std": text(objective, DIRECTION[objective] * c.std), "worst": text(objective, c.worst),
             "versus": interval(c.versus_defaults, objective), "verdict": verdict(c)} for c in confirmed]


def absent(confirm_top: Optional[int]) -> str:
    """Why there is no confirmation to show, and what that means for the leaderboard."""
    why = ("confirmation was off (--confirm-top 0)" if confirm_top == 0
           else "the sweep stopped before its confirmation ran (interrupted)")
    return (f"No configuration was confirmed on fresh seeds: {why}. The leaderboard's scores are single-seed, "
            "and its top trial is biased upwards by having been picked as the best of many.")


def figure(confirmed: Sequence[Confirmed], winner: Optional[Confirmed], objective: Objective = "target_miou") -> Figure | str:
    """One row per configuration: each seed's score as a point, the mean with its standard deviation."""
    if not confirmed:
        return "Not shown: no configuration was confirmed."
    seeds = sorted({s for c in confirmed for s in c.scores})
    fig, ax = plt.subplots(figsize=(7, 0.55 * len(confirmed) + 1.6))
    for i, seed in enumerate(seeds):
        offset = (i - (len(seeds) - 1) / 2) * 0.1  # seeds with the same score stay apart
        scored = [(shown(objective, c.scores[seed]), y + offset) for y, c in enumerate(confirmed) if not math.isnan(c.scores.get(seed, math.nan))]
        if scored:
            ax.scatter(*zip(*scored), marker=MARKERS[i % len(MARKERS)], s=36, zorder=3, label=f"seed {seed}")
    first = next((c for c in confirmed if c.complete), None)
    for y, c in enumerate(confirmed):
        if c.complete:
            ax.errorbar(shown(objective, c.mean), y, xerr=0 if math.isnan(c.std) else abs(shown(objective, c.std)), fmt="|", color="black",
                        markersize=16, capsize=4, zorder=4, label="mean ± std" if c is first else None)
        if is_winner(c, winner):
            ax.axhspan(y - 0.45, y + 0.45, color="gold", alpha=0.3, zorder=0)
    ax.set_yticks(range(len(confirmed)), [label(c, winner) for c in confirmed])
    for tick, c in zip(ax.get_yticklabels(), confirmed):
        tick.set_fontweight("bold" if is_winner(c, winner) else "normal")
    ax.set_ylim(len(confirmed) - 0.5, -0.5)  # the first configuration (the defaults) on top
    ax.set(xlabel=f"final score ({UNITS[objective]}; a mean of the last evaluations)", title="Confirmation on fresh seeds")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(axis="x", alpha=0.3)
    return fig
