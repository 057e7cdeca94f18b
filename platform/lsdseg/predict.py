"""Segment any images with a trained checkpoint: Cityscapes-coloured label maps and overlays.

An image is resized to the checkpoint config's evaluation size (`data.eval_*`), the input size F was
evaluated at, and the argmax is brought back to the image's own size by pixel centres, as `evaluate` does.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from lsdseg import checkpoint
from lsdseg.config import Config
from lsdseg.data.base import DataError, read_rgb, to_tensors
from lsdseg.data.labels import colorize, resize_ids
from lsdseg.device import resolve_device
from lsdseg.models import FCN8s, Generator
from lsdseg.writable import unwritable

OVERLAY_ALPHA = 0.5  # share of the label colour in an overlay: both the scene and the classes stay readable


@dataclass
class Segmenter:
    """F+C of a checkpoint (and G, when the run adapted), in eval mode on the config's device."""

    cfg: Config
    f: FCN8s
    g: Optional[Generator]
    device: torch.device
    step: int


def load_segmenter(path: Path | str) -> Segmenter:
    state = checkpoint.load(path)  # a missing file or one of the wrong kind: CheckpointError, one line
    cfg, nets = checkpoint.rebuild(state)
    device = resolve_device(cfg.train.device)
    for net in (nets.f, nets.g):
        if net is not None:
            net.to(device)
    return Segmenter(cfg, nets.f, nets.g, device, state["step"])


def _eval_size(seg: Segmenter, images: torch.Tensor) -> torch.Tensor:
    size = (seg.cfg.data.eval_height, seg.cfg.data.eval_width)
    x = images.to(seg.device)
    return x if tuple(x.shape[-2:]) == size else F.interpolate(x, size=size, mode="bilinear", align_corners=False)


@torch.no_grad()
def segment(seg: Segmenter, images: torch.Tensor, size: Sequence[int]) -> np.ndarray:
    """Bx3xhxw RGB in [0, 1] -> BxHxW train ids at `size` (H, W)."""
    pred = seg.f(_eval_size(seg, images))[0].argmax(1)
    return resize_ids(pred, size).to(torch.uint8).cpu().numpy()


@torch.no_grad()
def reconstruct(seg: Segmenter, images: torch.Tensor) -> np.ndarray:
    """G(F(x)): Bx3xhxw RGB in [0, 1] -> BxHxWx3 uint8 at the evaluation size; needs an adapted run's G."""
    x = _eval_size(seg, images)
    out = seg.g(seg.f(x)[1], x.shape[-2:])
    return (out.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def overlay(image: np.ndarray, train_ids: np.ndarray) -> np.ndarray:
    blend = (1 - OVERLAY_ALPHA) * image.astype(np.float32) + OVERLAY_ALPHA * colorize(train_ids).astype(np.float32)
    return blend.round().astype(np.uint8)


def _check_inputs(paths: Sequence[Path], out: Path, overwrite: bool) -> None:
    """Before the model loads and anything is written: a bad path, an image that does not decode to its end,
    an output folder that cannot be written, or two outputs that would overwrite each other fail at once,
    in one line; so do outputs already there, unless `overwrite`."""
    seen: dict[str, Path] = {}
    for path in paths:
        if not path.is_file():
            raise DataError(f"image {path} not found: pass existing image files")
        try:
            with Image.open(path) as img:
                img.load()  # decoded to the end: a truncated file fails here, not after other images' outputs
        except Image.DecompressionBombError as err:
            raise DataError(f"{path} is too large to decode safely ({err}): pass images of a real camera's size") from None
        except (OSError, ValueError, SyntaxError):
            raise DataError(f"{path} is not an image Pillow can read to its end (not an image, or truncated): "
                            "pass complete image files (PNG, JPEG, ...)") from None
        if path.stem in seen:
            raise DataError(f"images {seen[path.stem]} and {path} would both be written as {path.stem}*.png: "
                            "predict them into different --out folders")
        seen[path.stem] = path
    refused = unwritable(out)
    if refused is not None:
        raise DataError(f"--out {out} cannot be written (at {refused}): pick a folder you can write to")
    there = [target for path in paths for target in _outputs(out, path).values() if target.exists()]
    if there and not overwrite:
        raise DataError(f"{len(there)} of the outputs already exist in {out} (e.g. {there[0].name}): "
                        "pass --overwrite to replace them, or pick another --out")


def _outputs(out: Path, image: Path) -> dict[str, Path]:
    return {kind: out / f"{image.stem}_{kind}.png" for kind in ("seg", "overlay")}


def predict_files(checkpoint_path: Path | str, paths: Sequence[Path | str], out_dir: Path | str, progress: bool = True,
                  overwrite: bool = False) -> list[Path]:
    """For each image: `<stem>_seg.png` (coloured train ids) and `<stem>_overlay.png`; returns the paths written.
    Outputs already in `out_dir` are refused before anything is written, unless `overwrite`."""
    paths, out = [Path(p) for p in paths], Path(out_dir)
    _check_inputs(paths, out, overwrite)
    seg = load_segmenter(checkpoint_path)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in tqdm(paths, desc="predict", unit="img", disable=not progress):
        image = read_rgb(path)
        ids = segment(seg, to_tensors(image, None)["image"][None], (image.height, image.width))[0]
        targets = _outputs(out, path)
        for kind, pixels in (("seg", colorize(ids)), ("overlay", overlay(np.asarray(image), ids))):
            Image.fromarray(pixels).save(targets[kind])
            written.append(targets[kind])
    return written
