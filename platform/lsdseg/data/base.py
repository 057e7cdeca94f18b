"""The dataset shared by every domain, and the public code's crop/resize scheme as transforms.

An item is looked up by `(index, seed)`: the seed drives the random crop, so what a training step sees is
a pure function of (run seed, step). That is what makes a resumed run see exactly the batches an
uninterrupted one would, with any number of loader workers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Protocol

import numpy as np
import torch
from PIL import Image

from lsdseg.data.labels import IGNORE


class DataError(ValueError):
    """A dataset that cannot be read; the message is one line naming the path and the fix."""


@dataclass(frozen=True)
class Sample:
    image: Path
    label: Optional[Path]


class Transform(Protocol):
    def __call__(
        self, image: Image.Image, label: Optional[np.ndarray], rng: np.random.Generator
    ) -> tuple[Image.Image, Optional[np.ndarray]]: ...


def read_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise unreadable(path, err, "image") from None


@dataclass(frozen=True)
class RandomCrop:
    """Random crop of (height, width) after an optional aspect-keeping resize to `resize_width`.

    `margin` keeps the crop that many pixels of the stored image away from the bottom/right edges
    (Cityscapes train in the public code: 50), scaled with a resize and narrowed where the crop needs the
    room (a crop as large as the resized image takes all of it). With `need_valid`, crops with no valid
    label are redrawn (GTA5 in the public code).
    Images are resized with LANCZOS, as the public code resized GTA5's; labels with NEAREST, by pixel centres
    (the public code used LANCZOS for GTA5's labels too, mixing ids at edges).
    """

    height: int
    width: int
    margin: int = 0
    resize_width: Optional[int] = None
    need_valid: bool = False
    tries: int = 10

    def __call__(self, image, label, rng):
        margin = self.margin
        if self.resize_width is not None and image.width != self.resize_width:
            margin = round(margin * self.resize_width / image.width)
            size = (self.resize_width, round(image.height * self.resize_width / image.width))
            image = image.resize(size, Image.LANCZOS)
            if label is not None:
                label = np.asarray(Image.fromarray(label).resize(size, Image.NEAREST))
        room_y, room_x = image.height - self.height, image.width - self.width
        if room_y < 0 or room_x < 0:
            raise DataError(
                f"image of {image.width}x{image.height} is smaller than the crop {self.width}x{self.height}:"
                " lower data.crop_height/data.crop_width"
            )
        max_y, max_x = room_y - min(margin, room_y), room_x - min(margin, room_x)
        for _ in range(self.tries):
            y, x = int(rng.integers(0, max_y + 1)), int(rng.integers(0, max_x + 1))
            crop_label = None if label is None else label[y : y + self.height, x : x + self.width]
            if not self.need_valid or crop_label is None or (crop_label != IGNORE).any():
                break
        return image.crop((x, y, x + self.width, y + self.height)), crop_label


@dataclass(frozen=True)
class Resize:
    """Whole-image resize for evaluation; labels keep their own resolution (predictions are compared there)."""

    height: int
    width: int

    def __call__(self, image, label, rng):
        if image.size != (self.width, self.height):
            image = image.resize((self.width, self.height), Image.LANCZOS)
        return image, label


def to_tensors(image: Image.Image, label: Optional[np.ndarray]) -> dict[str, torch.Tensor]:
    """RGB in [0, 1] as float CHW (G and D work in this space; F normalises inside), label as int64 HW."""
    pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
    item = {"image": pixels.float().div_(255.0)}
    if label is not None:
        item["label"] = torch.from_numpy(np.ascontiguousarray(label)).long()
    return item


class SegmentationDataset(torch.utils.data.Dataset):
    """Images (and train-id labels unless `labelled=False`) from a list of samples."""

    def __init__(
        self,
        samples: list[Sample],
        read_label: Callable[[Path], np.ndarray],
        transform: Transform,
        labelled: bool = True,
    ):
        if not samples:
            raise DataError("dataset is empty: check the dataset root and split")
        self.samples = samples
        self.read_label = read_label
        self.transform = transform
        self.labelled = labelled

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[Image.Image, Optional[np.ndarray]]:
        sample = self.samples[index]
        label = self.read_label(sample.label) if self.labelled and sample.label is not None else None
        image = read_rgb(sample.image)
        if label is not None and label.shape != (image.height, image.width):
            raise DataError(_mismatch(sample, label.shape[::-1], image.size))
        return image, label

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, 0)
        image, label = self.load(index)
        image, label = self.transform(image, label, np.random.default_rng(seed))
        return to_tensors(image, label)


# Small helpers shared by the per-dataset modules (gta5, synthia, cityscapes).


def check_split(split: str, known: tuple[str, ...], root: Path) -> None:
    if split not in known:
        raise DataError(f"unknown split {split!r} for dataset {root}: use one of {', '.join(known)}")


def require_dirs(root: Path, *subdirs: str) -> None:
    """The root first, so a wrong root is reported as such rather than as a missing sub-folder."""
    holds = " and ".join(f"{s}/" for s in subdirs)
    for path in (root, *(root / s for s in subdirs)):
        if not path.is_dir():
            raise DataError(f"{path} not found: set the dataset root to the folder that holds {holds}")


def pair_samples(images: list[Path], label_for: Callable[[Path], Path], where: str, labelled: bool = True) -> list[Sample]:
    """Sorted image/label samples; only existence is checked here, the label's kind is checked on read.
    Without `labelled` (a split used without its labels) no label file is needed, nor looked for."""
    samples = []
    for image in sorted(images):
        if not labelled:
            samples.append(Sample(image, None))
            continue
        label = label_for(image)
        if not label.is_file():
            raise DataError(f"image {image} has no label file {label}: add the label or remove the image")
        samples.append(Sample(image, label))
    if not samples:
        raise DataError(f"no images in {where}: check the dataset root and split")
    return samples


def unreadable(path: Path, err: Exception, kind: str = "label") -> DataError:
    return DataError(f"cannot read {kind} {path}: {err}; replace the file or remove it from the dataset")


def _mismatch(sample: Sample, label_size: tuple[int, int], image_size: tuple[int, int]) -> str:
    return (f"label {sample.label} is {label_size[0]}x{label_size[1]} but its image {sample.image} is "
            f"{image_size[0]}x{image_size[1]}: pair the right files, or remove the pair from the dataset")


ID_MAP_MODES = ("L", "P")


def _not_an_id_map(path: Path, mode: str) -> DataError:
    return DataError(f"label {path} is a {mode!r} image, not a single-channel id map ('L' or 'P'):"
                     " point the dataset at the labelId PNGs, not the colour ones")


def read_id_map(path: Path, table: np.ndarray) -> np.ndarray:
    """A single-channel 8-bit id PNG ('L', or 'P' whose indices are the ids) mapped through `table`."""
    try:
        with Image.open(path) as img:
            mode = img.mode
            ids = np.asarray(img) if mode in ID_MAP_MODES else None
    except (OSError, ValueError) as err:
        raise unreadable(path, err) from None
    if ids is None:
        raise _not_an_id_map(path, mode)
    return table[ids]


def id_map_size(path: Path) -> tuple[int, int]:
    """What `read_id_map` checks, from the file's header alone; (width, height)."""
    try:
        with Image.open(path) as img:  # lazy: only the header is read
            mode, size = img.mode, img.size
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise unreadable(path, err) from None
    if mode not in ID_MAP_MODES:
        raise _not_an_id_map(path, mode)
    return size


def png_header(path: Path) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from a PNG's IHDR chunk: 26 bytes, no decoding."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError as err:
        raise unreadable(path, err) from None
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise unreadable(path, ValueError("not a PNG file"))
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"), head[24], head[25]


def check_pairs(samples: list[Sample], label_size: Callable[[Path], tuple[int, int]],
                tick: Optional[Callable[[], None]] = None) -> None:
    """Before training, from headers only: every label is of its dataset's kind and the size of its image.
    A bad file deep in a dataset would otherwise end a run hours in, or at its first evaluation."""
    for sample in samples:
        if sample.label is not None:
            size = label_size(sample.label)
            try:
                with Image.open(sample.image) as img:
                    image_size = img.size
            except (OSError, ValueError, Image.DecompressionBombError) as err:
                raise unreadable(sample.image, err, "image") from None
            if size != image_size:
                raise DataError(_mismatch(sample, size, image_size))
        if tick is not None:
            tick()
