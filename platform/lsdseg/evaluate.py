"""Evaluation at every checkpoint: target mIoU where target labels are used, and the label-free validators.

Target mIoU: one dataset-level confusion matrix, predictions at label resolution. The validators
(lsdseg.validators) need rows of per-pixel softmax outputs and F's features: a fixed number of pixels is
sampled from every image, with a fixed seed, so that two checkpoints are judged on the same pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lsdseg import validators
from lsdseg.data.labels import CLASSES, IGNORE, resize_ids
from lsdseg.metrics import confusion_matrix, iou
from lsdseg.models import FCN8s

PIXELS_PER_IMAGE = 32  # rows each validation image gives the validators
SND_ROWS = 2000  # SND compares every pair of rows: a subsample keeps it at 4 M similarities
DEV_ROWS = 2000  # per domain, for DEV's domain classifier (its fit is most of the validators' cost)


@dataclass(frozen=True)
class Evaluation:
    miou: float
    per_class_iou: dict[str, float]  # the protocol's classes, by name (NaN: absent from labels and predictions)
    confusion: np.ndarray


@dataclass(frozen=True)
class Validation:
    target: Optional[Evaluation]  # None: the target labels are not used (data.target_labels=false)
    validators: dict[str, float]  # lsdseg.objectives.VALIDATORS, by name


def _scored(f: FCN8s, loader, device: torch.device, autocast, channels_last: bool) -> Iterator[tuple[dict, torch.Tensor, torch.Tensor]]:
    """(batch, fp32 scores, fp32 fc7 features) of every batch, F in eval mode."""
    was_training = f.training
    f.eval()
    try:
        for batch in loader:
            x = batch["image"].to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast():
                scores, feats = f(x)
            yield batch, scores.float(), feats.fc7.float()
    finally:
        f.train(was_training)


def _add_confusion(conf: np.ndarray, scores: torch.Tensor, labels: Sequence[torch.Tensor], device: torch.device) -> None:
    pred = scores.argmax(1)
    for p, label in zip(pred, labels, strict=False):
        # the argmax brought to the label's own resolution, as the reference does (by pixel centres)
        conf += confusion_matrix(resize_ids(p[None], label.shape[-2:])[0], label.to(device), conf.shape[0])


def _result(conf: np.ndarray, classes: Sequence[int]) -> Evaluation:
    per_class, miou = iou(conf, classes)
    return Evaluation(miou, {CLASSES[c]: float(per_class[c]) for c in classes}, conf)


@torch.no_grad()
def evaluate(f: FCN8s, loader, device: torch.device, autocast, classes: Sequence[int], channels_last: bool = False) -> Evaluation:
    """Target mIoU over a labelled loader."""
    k = f.score_fr.out_channels
    conf = np.zeros((k, k), dtype=np.int64)
    for batch, scores, _ in _scored(f, loader, device, autocast, channels_last):
        _add_confusion(conf, scores, batch["label"], device)
    return _result(conf, classes)


class _Rows:
    """Sampled pixels' softmax outputs, fc7 features, (source) cross-entropy losses and the image each came from."""

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed)
        self.probs: list[torch.Tensor] = []
        self.features: list[torch.Tensor] = []
        self.losses: list[torch.Tensor] = []
        self.images: list[torch.Tensor] = []
        self.seen = 0  # images added so far: the next one's id

    def add(self, scores: torch.Tensor, fc7: torch.Tensor, labels: Optional[Sequence[torch.Tensor]]) -> None:
        height, width = scores.shape[-2:]
        for i in range(scores.shape[0]):
            if labels is None:
                candidates = torch.arange(height * width)
            else:  # the label at the scores' resolution; only pixels of a valid class
                small = resize_ids(labels[i][None], (height, width))[0].flatten()
                candidates = torch.nonzero((small != IGNORE) & (small < scores.shape[1])).flatten()
            self.seen += 1
            if len(candidates) == 0:
                continue
            chosen = candidates[torch.randperm(len(candidates), generator=self.generator)[:PIXELS_PER_IMAGE]]
            ys, xs = chosen // width, chosen % width
            logits = scores[i][:, ys, xs].T.cpu()
            self.probs.append(torch.softmax(logits, dim=1))
            cells = fc7[i][:, ys * fc7.shape[-2] // height, xs * fc7.shape[-1] // width].T
            self.features.append(cells.cpu())
            self.images.append(torch.full((len(chosen),), self.seen - 1))
            if labels is not None:
                self.losses.append(F.cross_entropy(logits, small[chosen].cpu(), reduction="none"))

    def sample(self, rows: int) -> tuple[np.ndarray, Optional[np.ndarray], np.ndarray]:
        """At most `rows` of (features, losses, image ids), drawn at random."""
        features = torch.cat(self.features)
        pick = torch.randperm(len(features), generator=self.generator)[:rows]
        losses = torch.cat(self.losses)[pick].numpy() if self.losses else None
        return features[pick].numpy(), losses, torch.cat(self.images)[pick].numpy()


@torch.no_grad()
def validate(f: FCN8s, target_loader, source_loader, device: torch.device, autocast, classes: Sequence[int],
             target_labels: bool = True, channels_last: bool = False, seed: int = 0) -> Validation:
    """Target mIoU (with `target_labels`) and every validator, in one pass over each validation split."""
    k = f.score_fr.out_channels
    target_conf, source_conf = np.zeros((k, k), dtype=np.int64), np.zeros((k, k), dtype=np.int64)
    target, source = _Rows(seed), _Rows(seed + 1)
    for batch, scores, fc7 in _scored(f, target_loader, device, autocast, channels_last):
        if target_labels:
            _add_confusion(target_conf, scores, batch["label"], device)
        target.add(scores, fc7, None)  # the validators never see target labels
    for batch, scores, fc7 in _scored(f, source_loader, device, autocast, channels_last):
        _add_confusion(source_conf, scores, batch["label"], device)
        source.add(scores, fc7, batch["label"])
    probs = torch.cat(target.probs)
    snd = validators.soft_neighbourhood_density(probs[torch.randperm(len(probs), generator=target.generator)[:SND_ROWS]])
    source_features, source_losses, source_images = source.sample(DEV_ROWS)
    target_features, _, target_images = target.sample(DEV_ROWS)
    scores = {
        "source_miou": _result(source_conf, classes).miou,
        "entropy": validators.entropy(probs),
        "im": validators.information_maximisation(probs),
        "snd": snd,
        "dev": validators.deep_embedded_validation(source_features, source_losses, source_images, target_features, target_images, seed),
    }
    return Validation(_result(target_conf, classes) if target_labels else None, scores)


@dataclass(frozen=True)
class CheckpointEvaluation:
    evaluation: Evaluation
    split: str  # "synthetic/target_test", "cityscapes/val", ...
    images: int
    step: int  # the checkpoint's iteration
    also: dict[str, float]  # lsdseg.data.ALSO_REPORTED figures, e.g. SYNTHIA's miou13


def evaluate_checkpoint(state: dict, role: str = "target_val", overrides: Sequence[str] = ()) -> CheckpointEvaluation:
    """A checkpoint's target mIoU on one labelled target split of its config (`target_val`, or `target_test`:
    the images nothing selects on), with `overrides` on its config (e.g. another root on this machine)."""
    from lsdseg.checkpoint import rebuild
    from lsdseg.data import also_reported, protocol_classes, split_of, val_dataset, val_loader
    from lsdseg.device import autocast_for, resolve_device

    cfg, nets = rebuild(state, overrides)
    device = resolve_device(cfg.train.device)
    domain = cfg.data.target_test if role == "target_test" else cfg.data.target_val
    loader = val_loader(val_dataset(domain, cfg.data, role), cfg.data)
    ev = evaluate(nets.f.to(device), loader, device, autocast_for(device, cfg.train.bf16), protocol_classes(cfg.data))
    return CheckpointEvaluation(ev, f"{domain.name}/{split_of(domain, role)}", len(loader.dataset), state["step"],
                                also_reported(cfg.data, ev.per_class_iou))
