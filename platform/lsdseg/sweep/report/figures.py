"""The report's figures, drawn with matplotlib (and Optuna's matplotlib plots for fANOVA and parallel
coordinates). Each function returns a Figure, or a one-sentence reason why the sweep cannot show it.
"""
from __future__ import annotations

import math
import warnings
from typing import Optional, Sequence

import matplotlib
import numpy as np
import optuna
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from optuna.trial import TrialState

from lsdseg.data.labels import CLASSES
from lsdseg.sweep.results import Trial

matplotlib.use("Agg")  # files only: never a window, whatever display the machine has

STATUS_COLOURS = {"completed": "tab:blue", "pruned": "tab:orange", "diverged": "tab:red", "errored": "tab:gray"}


def history(trials: Sequence[Trial]) -> Figure | str:
    """Final mIoU of every trial in the order Optuna proposed them, and the best completed so far."""
    scored = [t for t in trials if t.number is not None and not math.isnan(t.miou)]
    if not scored:
        return "no trial reached an evaluation"
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for status, colour in STATUS_COLOURS.items():
        group = [t for t in scored if t.status == status]
        if group:
            ax.scatter([t.number for t in group], [t.miou * 100 for t in group], color=colour, label=status, zorder=3)
    best, xs, ys = -math.inf, [], []
    for t in scored:
        if t.status == "completed":
            best = max(best, t.miou * 100)
        if best > -math.inf:
            xs.append(t.number)
            ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="black", label="best completed so far")
    ax.set(xlabel="Optuna trial number", ylabel="final target mIoU (%)", title="Optimisation history")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def curves(ranked: Sequence[Trial], top: int = 5) -> Figure | str:
    """Target mIoU against training iteration for the leading trials."""
    shown = [t for t in ranked if t.history][:top]
    if not shown:
        return "no trial reached an evaluation"
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for t in shown:
        steps, values = zip(*t.history)
        ax.plot(steps, [v * 100 for v in values], marker="o", markersize=3, label=f"{t.label} ({t.status})")
    ax.set(xlabel="training iteration", ylabel="target mIoU (%)", title=f"mIoU curves of the top {len(shown)} trials")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _common_params(study: optuna.Study) -> list[str]:
    """Parameters every completed trial has: conditional ones cannot be compared across all of them."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(set.intersection(*(set(t.params) for t in done))) if done else []


def importance(study: optuna.Study) -> Figure | str:
    """fANOVA importance of each hyperparameter for the final mIoU of completed trials."""
    params = _common_params(study)
    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 2 or not params:
        return "fANOVA needs at least two completed trials"
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            ax = optuna.visualization.matplotlib.plot_param_importances(study, evaluator=evaluator, params=params, target_name="mIoU")
    except RuntimeError:  # fANOVA's forest finds no variance: every completed trial scored the same
        return "every completed trial has the same mIoU, so no hyperparameter explains a difference"
    ax.figure.set_size_inches(7, 0.35 * len(params) + 1.5)
    ax.set_title("", loc="left")  # Optuna's own title, at the left; ours replaces it
    ax.set_title("Hyperparameter importance (fANOVA, final mIoU of completed trials)")
    return ax.figure


def parallel(study: optuna.Study) -> Figure | str:
    """Each completed trial as a line through its parameter values, coloured by mIoU."""
    params = _common_params(study)
    if not params:
        return "no completed trial"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = optuna.visualization.matplotlib.plot_parallel_coordinate(study, params=params, target_name="mIoU")
    ax.figure.set_size_inches(max(8, 1.1 * len(params)), 4.5)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.set_title("Parallel coordinates (completed trials)")
    return ax.figure


def per_class(columns: dict[str, dict[str, float]]) -> Figure | str:
    """Grouped bars: IoU per class of each named run (best trial, default weights, source-only)."""
    columns = {name: values for name, values in columns.items() if values}
    if not columns:
        return "no per-class IoU was recorded"
    names = [c for c in CLASSES if any(c in v for v in columns.values())]
    fig, ax = plt.subplots(figsize=(max(7, 0.8 * len(names)), 3.8))
    width = 0.8 / len(columns)
    x = np.arange(len(names))
    for i, (run, values) in enumerate(columns.items()):
        ax.bar(x + (i - (len(columns) - 1) / 2) * width, [values.get(c, math.nan) * 100 for c in names], width, label=run)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set(ylabel="IoU (%)", title="Per-class IoU on the target domain (last evaluation)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def examples(columns: Sequence[str], rows: Sequence[Sequence[Optional[np.ndarray]]]) -> Figure | str:
    """A grid of target images, one row each: image, ground truth, predictions, G's reconstruction."""
    if not rows:
        return "no target validation image could be read"
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.6 * len(columns), 1.5 * len(rows) + 0.4), squeeze=False)
    for r, row in enumerate(rows):
        for c, pixels in enumerate(row):
            ax = axes[r][c]
            ax.imshow(pixels, interpolation="nearest")
            ax.set_axis_off()
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
    fig.suptitle("Target-domain validation images (Cityscapes colours)")
    fig.tight_layout()
    return fig
