"""The report's figures drawn from the Optuna study: fANOVA importance and parallel coordinates.

Both read only completed search trials and their score (the value Optuna was told), and only the
parameters every one of them has: a conditional parameter, sampled by some trials only, cannot be
compared across all of them. Each function returns a figure or a sentence saying why it is not shown.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path

import optuna
import plotly.offline
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState
from plotly import graph_objects as go

from lsdseg.objectives import DIRECTION, PERCENT, Objective

# fANOVA fits a random forest from a trial's parameters to its score. Each score is one seed's, and one
# evaluation swings by about ±5 points on the benchmark; with fewer completed trials than the full space
# has parameters (11), the forest fits that noise, and the importances change with the forest's own seed
# (6 trials once gave g_beta1 0.42). Below this many completed trials the report shows no importance.
MIN_TRIALS = 10
FOREST_SEEDS = 5  # fANOVA is evaluated with this many forest seeds; the spread between them is shown
TICK_GAP = 0.05  # parallel coordinates: the least distance, in axis heights, between two tick labels

IMPORTANCE_CAPTION = (f"Shown from {MIN_TRIALS} completed trials. Bars: mean over {FOREST_SEEDS} fANOVA forests; "
                      "whiskers: their standard deviation. That spread is the forest's, not the sweep's: another "
                      "set of single-seed trials would move these numbers more.")
PARALLEL_CAPTION = ("Each line is one completed single-seed trial, coloured by its score; a pattern carried by a few "
                    "lines can be one evaluation's noise. Conditional parameters are left out. Hover over a line to read its values.")


def completed(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)]


def common_params(trials: list[FrozenTrial]) -> list[str]:
    return sorted(set.intersection(*(set(t.params) for t in trials))) if trials else []


def importance(study: optuna.Study) -> Figure | str:
    """fANOVA importance of each parameter for the score, as mean ± std over several forest seeds."""
    done = completed(study)
    if len(done) < MIN_TRIALS:
        return (f"Importance is not shown: {len(done)} completed trials, fewer than the {MIN_TRIALS} "
                "it needs to be more than noise.")
    params = common_params(done)
    if not params:
        return "Importance is not shown: no parameter was searched by every completed trial."
    try:
        runs = [optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed), params=params)
            for seed in range(FOREST_SEEDS)]
    except RuntimeError:  # the forest finds no variance: every completed trial scored the same
        return "Importance is not shown: every completed trial has the same score, so no parameter explains a difference."
    mean = {p: statistics.fmean(r[p] for r in runs) for p in params}
    order = sorted(params, key=mean.get)  # barh draws bottom-up: the most important on top
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(params) + 1.5))
    ax.barh(order, [mean[p] for p in order], xerr=[statistics.stdev(r[p] for r in runs) for p in order], capsize=3)
    ax.set(xlabel="fANOVA importance (share of the score's variance)", xlim=(0, None),
           title=f"Hyperparameter importance for the score, {len(done)} completed trials")
    ax.grid(axis="x", alpha=0.3)
    return fig


def parallel(study: optuna.Study, objective: Objective = "target_miou") -> go.Figure | str:
    """Optuna's interactive parallel-coordinate plot of the completed trials, score in % mIoU."""
    done = completed(study)
    params = common_params(done)
    if not params:
        return "Not shown: no completed trial."
    # A copy with the score in percent. Told as a maximised objective, Optuna draws the best lines
    # darkest; its `target=` option would do the conversion but reverse the colour scale.
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory" on the report's terminal
    try:
        copy = optuna.create_study(direction="maximize")
    finally:
        optuna.logging.set_verbosity(level)
    # the told score is oriented (higher is better); a lower-is-better objective stays negated, and says so
    scale, name = (100, "score (%)") if objective in PERCENT else (1, "score" + (f" (−{objective})" if DIRECTION[objective] < 0 else ""))
    copy.add_trials([optuna.trial.create_trial(params={p: t.params[p] for p in params}, value=t.value * scale,
                                               distributions={p: t.distributions[p] for p in params}) for t in done])
    fig = optuna.visualization.plot_parallel_coordinate(copy, params=params, target_name=name)
    _thin_ticks(fig)
    fig.update_layout(title={"text": f"Parallel coordinates, {len(done)} completed trials"}, margin={"t": 70, "b": 110},
                      xaxis={"ticktext": [name, *params], "tickangle": -30})
    return fig


def _thin_ticks(fig: go.Figure) -> None:
    """Optuna labels a log axis at every decade and at both ends of the data; an end a few percent from a
    decade prints on top of it. Keep both ends of each axis and drop the labels too close to a kept one."""
    kept = []
    for x in sorted({a.x for a in fig.layout.annotations}):
        ticks = sorted((a for a in fig.layout.annotations if a.x == x), key=lambda a: a.y)
        axis = [ticks[0], ticks[-1]] if len(ticks) > 1 else ticks
        for tick in ticks[1:-1]:
            if all(abs(tick.y - k.y) >= TICK_GAP for k in axis):
                axis.append(tick)
        kept += axis
    fig.layout.annotations = kept


def plotly_js() -> str:
    """plotly.js itself, to inline once in the page: the report is read where there is no network."""
    return plotly.offline.get_plotlyjs()


def embed(fig: go.Figure) -> str:
    """The figure as a <div> and its script, without plotly.js (the page inlines that once)."""
    return fig.to_html(full_html=False, include_plotlyjs=False, default_height="520px",
                       config={"displaylogo": False, "responsive": True})


def write_standalone(fig: go.Figure, path: Path) -> None:
    """The figure as its own page, plotly.js inlined: it opens offline, without the report."""
    fig.write_html(path, full_html=True, include_plotlyjs=True, config={"displaylogo": False, "responsive": True})
