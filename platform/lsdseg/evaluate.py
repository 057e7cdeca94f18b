"""Target-domain evaluation: one dataset-level confusion matrix, predictions at label resolution."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lsdseg.data.labels import CLASSES
from lsdseg.metrics import confusion_matrix, iou
from lsdseg.models import FCN8s


@dataclass(frozen=True)
class Evaluation:
    miou: float
    per_class_iou: dict[str, float]  # the protocol's classes, by name (NaN: absent from labels and predictions)
    confusion: np.ndarray


@torch.no_grad()
def evaluate(f: FCN8s, loader, device: torch.device, autocast, classes: Sequence[int], channels_last: bool = False) -> Evaluation:
    was_training = f.training
    f.eval()
    k = f.score_fr.out_channels
    conf = np.zeros((k, k), dtype=np.int64)
    for batch in loader:
        x = batch["image"].to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast():
            scores = f(x)[0]
        pred = scores.argmax(1, keepdim=True).float()
        for p, label in zip(pred, batch["label"]):
            # nearest upsampling of the argmax to the label's own resolution, as the reference does
            p = F.interpolate(p[None], size=label.shape[-2:], mode="nearest")[0, 0]
            conf += confusion_matrix(p.long(), label.to(device), k)
    f.train(was_training)
    per_class, miou = iou(conf, classes)
    return Evaluation(miou, {CLASSES[c]: float(per_class[c]) for c in classes}, conf)
