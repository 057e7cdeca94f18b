"""Label spaces: Cityscapes train ids (the model's classes) and the maps from each dataset's own ids.

Source: the reference's `data/cityscapes_info.json` (label2train) for Cityscapes and GTA5, and the
dongzhuoyao/pytorchgo SYNTHIA mapping quoted in shared/reference/lsdseg.md section 4.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

IGNORE = 255

CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)

# Cityscapes colour palette, by train id (used for pictures of labels and predictions).
PALETTE = np.array([
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
], dtype=np.uint8)

# Cityscapes (and GTA5) labelId -> train id; every other id is ignored.
CITYSCAPES_ID_TO_TRAIN = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}

# SYNTHIA-RAND-CITYSCAPES class id -> train id (terrain, truck and train do not exist in SYNTHIA).
SYNTHIA_ID_TO_TRAIN = {
    1: 10, 2: 2, 3: 0, 4: 1, 5: 4, 6: 8, 7: 5, 8: 13, 9: 7, 10: 11, 11: 18, 12: 17, 15: 6, 17: 12, 19: 15, 21: 3,
}

# Evaluation protocols: which train ids enter the mIoU.
PROTOCOLS = {
    "cityscapes19": tuple(range(19)),
    "synthia16": tuple(c for c in range(19) if c not in (9, 14, 16)),
    "synthia13": tuple(c for c in range(19) if c not in (3, 4, 5, 9, 14, 16)),
    # the built-in benchmark: road, sidewalk, building, pole, vegetation, sky, person, car
    "synthetic8": (0, 1, 2, 5, 8, 10, 11, 13),
}


def lookup_table(mapping: dict[int, int], size: int) -> np.ndarray:
    """A dense id -> train id table of `size` entries; unmapped ids go to IGNORE."""
    table = np.full(size, IGNORE, dtype=np.uint8)
    for src, dst in mapping.items():
        table[src] = dst
    return table


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """HxW train ids -> HxWx3 uint8 Cityscapes colours (ignore is black)."""
    out = np.zeros((*train_ids.shape, 3), dtype=np.uint8)
    valid = train_ids < len(PALETTE)
    out[valid] = PALETTE[train_ids[valid]]
    return out


def resize_ids(ids: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Class-id maps (B x h x w, any integer dtype) resized to `size` (int64): each output pixel takes the id
    under its centre ("nearest-exact"). PyTorch's plain "nearest" takes the floor index instead, which shifts
    a map by up to one source pixel: about 4 px of the crop on D's 1/8 grid, about 1 px in evaluation."""
    return F.interpolate(ids[:, None].float(), size=tuple(size), mode="nearest-exact")[:, 0].long()
