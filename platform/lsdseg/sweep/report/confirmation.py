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
from lsdseg.sweep.report.fmt import percent, points

MARKERS = "osD^vP*X"  # one per seed, so a seed's points can be followed from row to row
CAPTION = ("Each point is one training run on one seed; with a few seeds a 95 % interval is wide, and a configuration "
           "that is not reliably better than the default weights may only have been lucky in the search.")


def is_winner(c: Confirmed, winner: Optional[Confirmed]) -> bool:
    return winner is not None and c.candidate.rank == winner.candidate.rank


def label(c: Confirmed, winner: Optional[Confirmed]) -> str:
    return c.candidate.label + (" (winner)" if is_winner(c, winner) else "")


def interval(p: Optional[Paired]) -> str:
    """'+2.1 [−1.0, +5.2] (3 seeds)': the mean paired difference to the defaults and its 95 % t interval."""
    return "-" if p is None else f"{points(p.mean)} [{points(p.low)}, {points(p.high)}] ({p.n} seeds)"


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


def rows(confirmed: Sequence[Confirmed], winner: Optional[Confirmed]) -> list[dict[str, object]]:
    """The confirmation table: one row per configuration, in the order it was confirmed (defaults first)."""
    return [{"label": label(c, winner), "winner": is_winner(c, winner),
             "seeds": ", ".join(f"{s}: {percent(v)}" for s, v in sorted(c.scores.items())),
             "mean": percent(c.mean), "std": percent(c.std), "worst": percent(c.worst),
             "versus": interval(c.versus_defaults), "verdict": verdict(c)} for c in confirmed]


def absent(confirm_top: Optional[int]) -> str:
    """Why there is no confirmation to show, and what that means for the leaderboard."""
    why = ("confirmation was off (--confirm-top 0)" if confirm_top == 0
           else "the sweep stopped before its confirmation ran (interrupted)")
    return (f"No configuration was confirmed on fresh seeds: {why}. The leaderboard's scores are single-seed, "
            "and its top trial is biased upwards by having been picked as the best of many.")


def figure(confirmed: Sequence[Confirmed], winner: Optional[Confirmed]) -> Figure | str:
    """One row per configuration: each seed's score as a point, the mean with its standard deviation."""
    if not confirmed:
        return "Not shown: no configuration was confirmed."
    seeds = sorted({s for c in confirmed for s in c.scores})
    fig, ax = plt.subplots(figsize=(7, 0.55 * len(confirmed) + 1.6))
    for i, seed in enumerate(seeds):
        offset = (i - (len(seeds) - 1) / 2) * 0.1  # seeds with the same score stay apart
        scored = [(c.scores[seed] * 100, y + offset) for y, c in enumerate(confirmed) if not math.isnan(c.scores.get(seed, math.nan))]
        if scored:
            ax.scatter(*zip(*scored), marker=MARKERS[i % len(MARKERS)], s=36, zorder=3, label=f"seed {seed}")
    first = next((c for c in confirmed if c.complete), None)
    for y, c in enumerate(confirmed):
        if c.complete:
            ax.errorbar(c.mean * 100, y, xerr=0 if math.isnan(c.std) else c.std * 100, fmt="|", color="black",
                        markersize=16, capsize=4, zorder=4, label="mean ± std" if c is first else None)
        if is_winner(c, winner):
            ax.axhspan(y - 0.45, y + 0.45, color="gold", alpha=0.3, zorder=0)
    ax.set_yticks(range(len(confirmed)), [label(c, winner) for c in confirmed])
    for tick, c in zip(ax.get_yticklabels(), confirmed):
        tick.set_fontweight("bold" if is_winner(c, winner) else "normal")
    ax.set_ylim(len(confirmed) - 0.5, -0.5)  # the first configuration (the defaults) on top
    ax.set(xlabel="final score (% mIoU, mean of the last evaluations)", title="Confirmation on fresh seeds")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(axis="x", alpha=0.3)
    return fig
