"""Datasets by name: the built-in benchmark and GTA5, SYNTHIA, Cityscapes in their distributed layouts."""
from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Callable, Optional

import torch
from tqdm import tqdm

from lsdseg.config import DataConfig, DomainData
from lsdseg.data import cityscapes, gta5, synthetic, synthia
from lsdseg.data.base import DataError, Resize, SegmentationDataset, check_pairs
from lsdseg.data.labels import CLASSES, PROTOCOLS
from lsdseg.interrupted import Interrupted
from lsdseg.metrics import mean_iou_of

MODULES: dict[str, ModuleType] = {"synthetic": synthetic, "gta5": gta5, "synthia": synthia, "cityscapes": cityscapes}

__all__ = ["DataError", "prepare", "dataset_root", "train_dataset", "val_dataset", "val_loader", "protocol_classes", "also_reported",
           "ALSO_REPORTED"]


def _cache(cfg: DataConfig) -> Optional[Path]:
    return Path(cfg.cache_dir).expanduser().resolve() if cfg.cache_dir else None


def _splits(cfg: DataConfig, oracle: bool = False) -> list[tuple[str, DomainData, bool]]:
    """(role, domain, read with labels) of every split a run reads. The target's training split is read
    without labels, except by the target-oracle mode (`oracle`)."""
    return [("source", cfg.source, True), ("source_val", cfg.source, True), ("target", cfg.target, oracle),
            ("target_val", cfg.target_val, cfg.target_labels), ("target_test", cfg.target_test, True)]


def prepare(cfg: DataConfig, show_progress: bool, oracle: bool = False) -> None:
    """Check every real dataset's folders and, from file headers only, every label it will read; then
    generate the built-in benchmark now if a domain uses it (once per cache), with a progress bar. Checks
    first: a wrong path or a bad file must not cost a benchmark generation, nor end a run hours in."""
    try:
        _prepare(cfg, show_progress, oracle)
    except KeyboardInterrupt:
        raise Interrupted("interrupted before anything started: nothing was kept (the built-in benchmark is "
                          "written whole or not at all); run the command again") from None


def _prepare(cfg: DataConfig, show_progress: bool, oracle: bool) -> None:
    reads = {}
    for role, domain, labelled in _splits(cfg, oracle):
        if domain.name != "synthetic":
            root, split = dataset_root(domain, cfg, role), split_of(domain, role)
            reads[(domain.name, root, split, labelled)] = MODULES[domain.name].samples(root, split, labelled)
    with_labels = {key: samples for key, samples in reads.items() if key[3]}
    total = sum(map(len, with_labels.values()))
    # delay: a scan that takes under a second (small datasets) draws no bar
    with tqdm(desc="checking labels", total=total, unit="pair", disable=not show_progress or not total, leave=False, delay=1) as bar:
        for (name, *_), samples in with_labels.items():
            check_pairs(samples, MODULES[name].label_size, bar.update)
    if "synthetic" not in {cfg.source.name, cfg.target.name, cfg.target_val.name, cfg.target_test.name}:
        return
    if synthetic.benchmark_dir(_cache(cfg), cfg.synthetic_seed, cfg.synthetic_size).is_dir():
        return
    with tqdm(desc="built-in benchmark", unit="img", disable=not show_progress, leave=False) as bar:
        def tick(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)
        dataset_root(DomainData(), cfg, "source", progress=tick)


def dataset_root(domain: DomainData, cfg: DataConfig, role: str,
                 progress: Optional[Callable[[int, int], None]] = None) -> Path:
    """The folder of a domain's data; the built-in benchmark is generated on first use."""
    if domain.name == "synthetic":
        return synthetic.ensure_benchmark(_cache(cfg), cfg.synthetic_seed, cfg.synthetic_size, progress=progress)
    if domain.root is None:
        key = "source" if role == "source_val" else role  # the source's validation split lives under its root
        raise DataError(f"data.{key}.root is not set: point it at the {domain.name} folder (--data.{key}.root=PATH)")
    # absolute now: a Ray trial may run in another working directory
    return Path(domain.root).expanduser().resolve()


def split_of(domain: DomainData, role: str) -> str:
    """The configured split, else the dataset's own train split (source, target) or val split (target_val, target_test);
    source_val, the labelled split the validators use, is always the source dataset's own val split. The
    built-in benchmark has a split of its own for every role."""
    if role == "source_val":
        return "source_val" if domain.name == "synthetic" else "val"
    if domain.split is not None:
        return domain.split
    if domain.name == "synthetic":
        return {"source": "source_train", "target": "target_train"}.get(role, role)
    return "val" if role in ("target_val", "target_test") else "train"


def train_dataset(domain: DomainData, cfg: DataConfig, role: str, labelled: bool) -> SegmentationDataset:
    module = MODULES[domain.name]
    root = dataset_root(domain, cfg, role)
    transform = module.train_transform(cfg.crop_height, cfg.crop_width)
    if role == "target" and cfg.target_scale == "eval":  # crops at the scale F is evaluated at
        transform = replace(transform, resize_width=cfg.eval_width)
    return SegmentationDataset(module.samples(root, split_of(domain, role), labelled), module.read_label, transform, labelled=labelled)


def val_dataset(domain: DomainData, cfg: DataConfig, role: str = "target_val", labelled: bool = True) -> SegmentationDataset:
    """Whole images resized to the eval size; labels (unless not `labelled`) stay at their own resolution."""
    module = MODULES[domain.name]
    samples = module.samples(dataset_root(domain, cfg, role), split_of(domain, role), labelled)
    limit = cfg.source_val_limit if role == "source_val" else cfg.val_limit
    if limit is not None:
        samples = samples[:limit]
    return SegmentationDataset(samples, module.read_label, Resize(cfg.eval_height, cfg.eval_width), labelled=labelled)


def _collate(items: list[dict[str, torch.Tensor]]) -> dict:
    return {"image": torch.stack([i["image"] for i in items]), "label": [i["label"] for i in items] if "label" in items[0] else None}


def val_loader(dataset: SegmentationDataset, cfg: DataConfig) -> torch.utils.data.DataLoader:
    # Its own generator: a loader without one draws its base seed from torch's global RNG at every pass,
    # so how often and on how many splits a run evaluates would change the noise of its training.
    return torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, num_workers=cfg.num_workers, collate_fn=_collate,
                                       generator=torch.Generator().manual_seed(0))


def split_digests(cfg: DataConfig) -> dict[str, dict[str, str]]:
    """Which files each split of a run reads, by role: its root, split, image count and a SHA-256 of the
    sorted relative file names (a changed, added or removed file changes it). Run after `prepare`."""
    found = {}
    for role, domain, labelled in _splits(cfg):
        root, split = dataset_root(domain, cfg, role), split_of(domain, role)
        samples = MODULES[domain.name].samples(root, split, labelled)
        names = sorted(str(p.relative_to(root)) for s in samples for p in (s.image, s.label) if p is not None)
        found[role] = {"name": f"{domain.name}/{split}", "root": str(root), "images": str(len(samples)),
                       "digest": hashlib.sha256("\n".join(names).encode()).hexdigest()}
    return found


# mIoUs over a subset of the protocol's classes, reported next to it, by metric name: what each is
ALSO_REPORTED = {"miou13": "mIoU* (SYNTHIA's 16 classes without wall, fence and pole; later papers compare on it)"}


def also_reported(cfg: DataConfig, per_class: dict[str, float]) -> dict[str, float]:
    """The ALSO_REPORTED figures this run's protocol has, from its per-class IoUs: SYNTHIA's 13-class mIoU*,
    the figure AdaptSegNet, ADVENT and later papers compare on."""
    if protocol_classes(cfg) != PROTOCOLS["synthia16"]:
        return {}
    return {"miou13": mean_iou_of(per_class, [CLASSES[c] for c in PROTOCOLS["synthia13"]])}


def protocol_classes(cfg: DataConfig) -> tuple[int, ...]:
    """Which classes enter the mIoU: the benchmark's, SYNTHIA's 16, or Cityscapes' 19."""
    if cfg.target_val.name == "synthetic":
        return PROTOCOLS["synthetic8"]
    if cfg.source.name == "synthia":
        return PROTOCOLS["synthia16"]
    return PROTOCOLS["cityscapes19"]
