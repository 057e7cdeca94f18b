"""The report's matplotlib figures of the runs themselves: history, curves, per-class IoU, examples (and
the examples' pixels).
Each function returns a Figure, or a one-sentence reason why the sweep cannot show it; each has a caption
saying how far it can be trusted (the figures from the Optuna study are in study_figures.py).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import matplotlib
import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lsdseg.data import val_dataset
from lsdseg.data.labels import CLASSES, colorize
from lsdseg.objectives import UNITS, Objective, shown
from lsdseg.predict import load_segmenter, reconstruct, segment
from lsdseg.sweep.record import TrialRecord

matplotlib.use("Agg")  # files only: never a window, whatever display the machine has

STATUS_COLOURS = {"completed": "tab:blue", "pruned": "tab:orange", "diverged": "tab:red", "errored": "tab:gray",
                  "interrupted": "tab:purple"}
NOISE = ("Single-seed trials: one evaluation swings by about ±5 points on the benchmark, the score (a mean of "
         "several) by less, so trials a few points apart are not reliably ordered.")
CAPTIONS = {
    "history": NOISE + " Trials stopped early score at an earlier iteration than completed ones.",
    "curves": NOISE + " Thin lines: every evaluation; thick lines: the score the trial was ranked by.",
    "per_class": "One training seed per run: the IoU of rare classes (poles, signs, riders) swings most between seeds.",
    "examples": "The first validation images, not chosen to be typical: look at them for failure modes, not for a score.",
}


def history(search: Sequence[TrialRecord], objective: Objective = "target_miou") -> Figure | str:
    """Final score of every search trial in the order Optuna proposed them, and the best completed so far."""
    scored = [t for t in search if t.number is not None and not math.isnan(t.score)]
    if not scored:
        return "Not shown: no trial reached an evaluation."
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for status, colour in STATUS_COLOURS.items():
        group = [t for t in scored if t.status == status]
        if group:
            ax.scatter([t.number for t in group], [shown(objective, t.score) for t in group], color=colour, label=status, zorder=3)
    best, xs, ys = -math.inf, [], []
    for t in sorted(scored, key=lambda t: t.number):
        if t.status == "completed":
            best = max(best, t.score)  # oriented: higher is better
        if best > -math.inf:
            xs.append(t.number)
            ys.append(shown(objective, best))
    if xs:
        ax.step(xs, ys, where="post", color="black", label="best completed so far")
    ax.set(xlabel="Optuna trial number", ylabel=f"final score ({UNITS[objective]})", title="Optimisation history")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def curves(ranked: Sequence[TrialRecord], top: int = 5, objective: Objective = "target_miou") -> Figure | str:
    """Target mIoU at every evaluation, and the smoothed score (where it is a target mIoU too, on the same
    axis), of the leading search trials."""
    shown = [t for t in ranked if t.history][:top]
    if not shown:
        return "Not shown: no trial reached an evaluation."
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for t in shown:
        steps, values = zip(*t.history, strict=False)
        own = None if objective == "target_miou" else f"{t.label} ({t.status})"  # else the score line carries the label
        line, = ax.plot(steps, [v * 100 for v in values], marker="o", markersize=3, linewidth=0.8, alpha=0.6, label=own)
        if t.scores and objective == "target_miou":
            steps, values = zip(*t.scores, strict=False)
            ax.plot(steps, [v * 100 for v in values], color=line.get_color(), linewidth=2.2, label=f"{t.label} ({t.status})")
    ax.set(xlabel="training iteration", ylabel="target mIoU (%)", title=f"mIoU and score of the top {len(shown)} trials")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def per_class(columns: dict[str, dict[str, float]]) -> Figure | str:
    """Grouped bars: IoU per class of each named run (the winner's run, default weights, source-only)."""
    columns = {name: values for name, values in columns.items() if values}
    if not columns:
        return "Not shown: no per-class IoU was recorded."
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
        return "Not shown: no target validation image could be read."
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


def target_examples(shipped: Path, source_only: Optional[Path], count: int) -> tuple[list[str], list[list[np.ndarray]]]:
    """The pixels of the example grid: (column titles, rows of HxWx3 uint8 pictures) for the first `count`
    target validation images: the image, its label, the shipped model's and the source-only reference's
    predictions, and the shipped G reconstructing the image from F's features."""
    seg = load_segmenter(shipped)
    others = [("source-only prediction", load_segmenter(source_only))] if source_only is not None else []
    columns = ["target image", "ground truth", "shipped model's prediction", *(name for name, _ in others)]
    if seg.g is not None:
        columns.append("G(F(image)): shipped")
    dataset = val_dataset(seg.cfg.data.target_val, seg.cfg.data)
    rows = []
    for index in range(min(count, len(dataset))):
        image, label = dataset.load(index)
        x = dataset[index]["image"][None]
        row = [np.asarray(image), colorize(label), colorize(segment(seg, x, label.shape)[0])]
        row += [colorize(segment(other, x, label.shape)[0]) for _, other in others]
        if seg.g is not None:
            row.append(reconstruct(seg, x)[0])
        rows.append(row)
    return columns, rows
