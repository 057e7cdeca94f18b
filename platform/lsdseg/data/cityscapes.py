"""Cityscapes (Cordts et al. 2016), fine annotations.

Layout: `<root>/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png` and
`<root>/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png` ('L' PNGs of raw labelIds), mapped with
`labels.CITYSCAPES_ID_TO_TRAIN` (the reference's cityscapes_info.json, shared/reference/lsdseg.md
section 4). The crop scheme follows the public LSD-seg code (section 3).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lsdseg.data.base import DataError, RandomCrop, Sample, check_split, id_map_size, pair_samples, read_id_map, require_dirs
from lsdseg.data.labels import CITYSCAPES_ID_TO_TRAIN, lookup_table

SPLITS = ("train", "val", "test")
IMAGE_SUFFIX, LABEL_SUFFIX = "_leftImg8bit.png", "_gtFine_labelIds.png"
_TABLE = lookup_table(CITYSCAPES_ID_TO_TRAIN, 256)


def samples(root: Path, split: str, labelled: bool = True) -> list[Sample]:
    """Without `labelled` (the unlabelled target training split, or a validation split used without its
    labels) gtFine is not needed: a Cityscapes download without it works for adaptation."""
    root = Path(root)
    check_split(split, SPLITS, root)
    require_dirs(root, f"leftImg8bit/{split}")
    if labelled and not (root / "gtFine" / split).is_dir():
        raise DataError(f"{root / 'gtFine' / split} not found: add Cityscapes' gtFine labels, or use the split without "
                        "labels (data.target_labels=false, and a label-free --objective: source_miou, entropy, im, snd or dev)")

    def label_for(image: Path) -> Path:
        stem = image.name[: -len(IMAGE_SUFFIX)]
        return root / "gtFine" / split / image.parent.name / f"{stem}{LABEL_SUFFIX}"

    images = list((root / "leftImg8bit" / split).glob(f"*/*{IMAGE_SUFFIX}"))
    return pair_samples(images, label_for, f"split {split!r} of {root}", labelled)


def read_label(path: Path) -> np.ndarray:
    return read_id_map(path, _TABLE)


label_size = id_map_size  # what read_label checks, from the header alone


def train_transform(crop_height: int, crop_width: int) -> RandomCrop:
    # As the public code: crops stay 50 px off the bottom/right edges.
    return RandomCrop(crop_height, crop_width, margin=50)
