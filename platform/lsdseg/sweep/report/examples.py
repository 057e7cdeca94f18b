"""The pixels of the report's example grid: target validation images, their labels, the winner's and the
source-only reference's predictions, and the winner's G reconstructing the image from F's features.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from lsdseg.data import val_dataset
from lsdseg.data.labels import colorize
from lsdseg.predict import load_segmenter, reconstruct, segment


def target_examples(winner: Path, source_only: Optional[Path], count: int) -> tuple[list[str], list[list[np.ndarray]]]:
    """(column titles, rows of HxWx3 uint8 pictures) for the first `count` target validation images."""
    seg = load_segmenter(winner)
    others = [("source-only prediction", load_segmenter(source_only))] if source_only is not None else []
    columns = ["target image", "ground truth", "winner's prediction", *(name for name, _ in others)]
    if seg.g is not None:
        columns.append("G(F(image)): winner")
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
