"""GTA5 ("Playing for Data", Richter et al. 2016) in the layout it is distributed in.

Layout: `<root>/images/NNNNN.png` and `<root>/labels/NNNNN.png`; labels are single-channel ('P' or 'L')
PNGs of Cityscapes labelIds, mapped to train ids with `labels.CITYSCAPES_ID_TO_TRAIN` (shared/reference/
lsdseg.md section 4). Splits and crop scheme follow the public LSD-seg code (sections 3 and 4).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lsdseg.data.base import RandomCrop, Sample, check_split, id_map_size, pair_samples, read_id_map, require_dirs
from lsdseg.data.labels import CITYSCAPES_ID_TO_TRAIN, lookup_table

SPLITS = ("train", "val", "all")
# Dropped from the public train list (code/errata.txt logs load errors for the 208xx ones).
REMOVED = frozenset({15188, 17705, *range(20801, 20861)})
FIRST_VAL = 24000
_TABLE = lookup_table(CITYSCAPES_ID_TO_TRAIN, 256)


def _in_split(image: Path, split: str) -> bool:
    if split == "all":
        return True
    if not image.stem.isdigit():
        return False
    index = int(image.stem)
    if split == "val":
        return index >= FIRST_VAL
    return 1 <= index < FIRST_VAL and index not in REMOVED


def samples(root: Path, split: str, labelled: bool = True) -> list[Sample]:
    root = Path(root)
    check_split(split, SPLITS, root)
    require_dirs(root, "images", *(["labels"] if labelled else []))
    images = [p for p in (root / "images").glob("*.png") if _in_split(p, split)]
    return pair_samples(images, lambda image: root / "labels" / image.name, f"split {split!r} of {root}", labelled)


def read_label(path: Path) -> np.ndarray:
    return read_id_map(path, _TABLE)


label_size = id_map_size  # what read_label checks, from the header alone


def train_transform(crop_height: int, crop_width: int) -> RandomCrop:
    # Public code: resize to width 1280 (2x the 640 crop), then redraw crops that hold no valid label.
    return RandomCrop(crop_height, crop_width, resize_width=2 * crop_width, need_valid=True)
