"""The built-in sim->real benchmark: procedurally generated street scenes in two appearance styles.

Every split holds `size` independent scenes drawn from one geometry distribution (`synthetic_scenes.scene`);
the source splits are painted in a flat, saturated "synthetic" style, the target splits in a textured,
lit, blurred and noisy "real" style. An image is a pure function of (seed, split, index), and the
benchmark is written once into a cache folder on first use.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from filelock import FileLock
from PIL import Image

from lsdseg.data.base import DataError, RandomCrop, Sample, check_split, pair_samples, read_id_map, require_dirs
from lsdseg.data.labels import PROTOCOLS
from lsdseg.data.synthetic_scenes import paint_source, paint_target, scene

CLASSES = PROTOCOLS["synthetic8"]  # road, sidewalk, building, pole, vegetation, sky, person, car
SPLITS = ("source_train", "source_val", "target_train", "target_val", "target_test")
VERSION = "v2"  # bump when the generator changes: the cache folder name carries it (v2: the target_test split)
_IDENTITY = np.arange(256, dtype=np.uint8)


def render(seed: int, split: str, index: int, height: int = 80, width: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """(HxWx3 uint8 image, HxW uint8 train-id label) of one scene; a pure function of its arguments."""
    if split not in SPLITS:
        raise DataError(f"unknown synthetic split {split!r}: use one of {', '.join(SPLITS)}")
    number = SPLITS.index(split)
    sc = scene(np.random.default_rng([seed, number, index, 0]), height, width)
    paint = paint_source if split.startswith("source") else paint_target
    return paint(sc, np.random.default_rng([seed, number, index, 1])), sc.label


def default_cache() -> Path:
    """$XDG_CACHE_HOME/lsdseg, else ~/.cache/lsdseg (the XDG base directory rule)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lsdseg"


def benchmark_dir(cache_dir: Optional[Path], seed: int, size: int, height: int = 80, width: int = 160) -> Path:
    base = Path(cache_dir) if cache_dir is not None else default_cache()
    return base / f"synthetic-{VERSION}-seed{seed}-n{size}-{height}x{width}"


def ensure_benchmark(
    cache_dir: Optional[Path],
    seed: int,
    size: int,
    height: int = 80,
    width: int = 160,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Path:
    """The benchmark folder (<split>/{index:05d}_image.png, _label.png), generated on first use only.

    Parallel callers serialise on a lock file next to the folder; the images are written into a
    temporary sibling that is renamed into place when complete, so a half-written cache is never seen.
    """
    root = benchmark_dir(cache_dir, seed, size, height, width)
    if root.is_dir():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        if root.is_dir():  # another process finished it while we waited
            return root
        tmp = root.with_name(root.name + ".tmp")
        if tmp.exists():  # left by a process that died mid-way (we hold the lock)
            shutil.rmtree(tmp)
        total = len(SPLITS) * size
        done = 0
        for split in SPLITS:
            folder = tmp / split
            folder.mkdir(parents=True)
            for index in range(size):
                image, label = render(seed, split, index, height, width)
                Image.fromarray(image).save(folder / f"{index:05d}_image.png", compress_level=1)
                Image.fromarray(label).save(folder / f"{index:05d}_label.png", compress_level=1)
                done += 1
                if progress is not None:
                    progress(done, total)
        os.replace(tmp, root)
    return root


def samples(root: Path, split: str, labelled: bool = True) -> list[Sample]:
    """The (image, label) pairs of one split of a folder made by `ensure_benchmark`."""
    check_split(split, SPLITS, root)
    require_dirs(root, split)
    images = list((Path(root) / split).glob("*_image.png"))
    return pair_samples(images, lambda image: image.with_name(image.name.replace("_image.png", "_label.png")),
                        f"split {split!r} of {root}", labelled)


def read_label(path: Path) -> np.ndarray:
    """HxW uint8 train ids: the label PNGs store train ids directly."""
    return read_id_map(path, _IDENTITY)


def train_transform(crop_height: int, crop_width: int) -> RandomCrop:
    """A plain random crop (the scenes already have the benchmark's resolution)."""
    return RandomCrop(crop_height, crop_width)
