"""mIoU as the LSD-seg evaluation computes it (reference `eval_cityscapes.py`, section 6).

One confusion matrix is accumulated over the whole dataset (never per image), rows = ground truth,
columns = prediction, over pixels whose ground truth is a valid class. IoU_c = TP / (TP + FP + FN);
mIoU is the nanmean over the protocol's classes, so a class absent from both the ground truth and the
predictions does not count. Predictions are compared at label resolution.
"""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]


def _as_int64(x: ArrayLike) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    return t.reshape(-1).to(torch.int64)


def confusion_matrix(pred: ArrayLike, target: ArrayLike, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """num_classes x num_classes int64 matrix; conf[g, p] counts pixels of class g predicted as p.

    Pixels whose target is `ignore_index` or outside [0, num_classes) are skipped; so are predictions
    outside that range (they cannot be a class of the protocol).
    """
    p, t = _as_int64(pred), _as_int64(target)
    if p.shape != t.shape:
        raise ValueError(f"pred has {p.numel()} pixels, target {t.numel()}: compare at label resolution")
    valid = (t != ignore_index) & (t >= 0) & (t < num_classes) & (p >= 0) & (p < num_classes)
    counts = torch.bincount(t[valid].cpu() * num_classes + p[valid].cpu(), minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes).numpy()


def iou(confusion: ArrayLike, classes: Sequence[int] | None = None) -> tuple[np.ndarray, float]:
    """(per-class IoU, mIoU) from a confusion matrix; `classes` restricts the mIoU to a protocol.

    Per-class IoU is NaN for a class with no ground truth and no prediction. The returned per-class
    array always covers every class of the matrix; only the mean is restricted.
    """
    conf = confusion.cpu().numpy() if isinstance(confusion, torch.Tensor) else np.asarray(confusion)
    conf = conf.astype(np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        per_class = np.where(union > 0, tp / union, np.nan)
    selected = per_class if classes is None else per_class[list(classes)]
    miou = float(np.nanmean(selected)) if np.isfinite(selected).any() else float("nan")
    return per_class, miou


def mean_iou_of(per_class: dict[str, float], names: Sequence[str]) -> float:
    """The mIoU over the classes `names` from per-class IoUs by name; NaN classes are dropped, as in `iou`."""
    values = np.array([per_class.get(name, np.nan) for name in names], dtype=np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
