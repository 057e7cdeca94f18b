"""SYNTHIA-RAND-CITYSCAPES (Ros et al. 2016).

Layout: `<root>/RGB/NNNNNNN.png` and `<root>/GT/LABELS/NNNNNNN.png`. Labels are 16-bit multi-channel PNGs
whose first (R) channel is the class id (dataset README.txt), mapped with `labels.SYNTHIA_ID_TO_TRAIN`
(shared/reference/lsdseg.md section 4). Splits and crop scheme follow the public LSD-seg code.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lsdseg.data.base import DataError, RandomCrop, Sample, check_split, pair_samples, png_header, require_dirs, unreadable
from lsdseg.data.labels import SYNTHIA_ID_TO_TRAIN, lookup_table

SPLITS = {"train": range(0, 9300), "val": range(9300, 9400), "all": None}
# A full 16-bit table, so that ids with a high byte are ignored instead of aliasing onto low ids.
_TABLE = lookup_table(SYNTHIA_ID_TO_TRAIN, 1 << 16)


def samples(root: Path, split: str, labelled: bool = True) -> list[Sample]:
    root = Path(root)
    check_split(split, tuple(SPLITS), root)
    require_dirs(root, "RGB", *(["GT/LABELS"] if labelled else []))
    ids = SPLITS[split]
    images = [
        p for p in (root / "RGB").glob("*.png") if ids is None or (p.stem.isdigit() and int(p.stem) in ids)
    ]
    return pair_samples(images, lambda image: root / "GT" / "LABELS" / image.name, f"split {split!r} of {root}", labelled)


def _not_a_label(path: Path, kind: str) -> DataError:
    return DataError(f"label {path} is {kind}, not a 16-bit multi-channel SYNTHIA label:"
                     " set the dataset root to the folder that holds RGB/ and GT/LABELS/ (not GT/COLOR/)")


def read_label(path: Path) -> np.ndarray:
    # PIL truncates 16-bit multi-channel PNGs to 8 bit; cv2 keeps them (decoded from bytes for any path).
    try:
        raw = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except (OSError, ValueError) as err:
        raise unreadable(path, err) from None
    if raw is None:
        raise DataError(f"cannot decode label {path}: replace the file or remove it from the dataset")
    if raw.dtype != np.uint16 or raw.ndim != 3 or raw.shape[2] < 3:
        raise _not_a_label(path, f"{raw.dtype} with {1 if raw.ndim == 2 else raw.shape[2]} channel(s)")
    return _TABLE[raw[:, :, 2]]  # cv2 decodes to BGR(A): the R channel is index 2


_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> channels (grey, RGB, palette, grey+alpha, RGBA)


def label_size(path: Path) -> tuple[int, int]:
    """What `read_label` checks, from the PNG header alone; (width, height)."""
    width, height, depth, colour = png_header(path)
    if depth != 16 or _CHANNELS.get(colour, 0) < 3:
        raise _not_a_label(path, f"{depth}-bit with {_CHANNELS.get(colour, '?')} channel(s)")
    return width, height


def train_transform(crop_height: int, crop_width: int) -> RandomCrop:
    return RandomCrop(crop_height, crop_width)  # public code: random crop at native resolution
