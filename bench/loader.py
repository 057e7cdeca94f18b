"""The paper-size data path on the CPU: how many loader workers keep one GPU fed.

The benchmark writes real-format files at the datasets' own sizes into a temporary folder, in their
distributed layouts: GTA5 (1914x1052 RGB PNG, 'L' labelId PNG), SYNTHIA-RAND-CITYSCAPES (1280x760 RGB PNG,
16-bit 3-channel label PNG) and Cityscapes (2048x1024 leftImg8bit PNG). Pictures are smooth fields with
sensor noise, so that they compress about as camera pictures do (PNG decoding cost follows the bytes).
Each item is then read exactly as training reads it (`lsdseg.data.train_dataset` with a preset's config:
decode, resize, crop, tensors): items/s in this process is the rate of one loader worker. Then the same
through `endless_batches` (the training loader: persistent workers, prefetching) with several workers.

Workers a GPU needs: a step at G images/s (source + target, batch 1 + 1) consumes G/2 images of each
domain per second; with a 3x margin, ceil(3 * G/2 / rate) workers per domain.

    python bench/loader.py [--items 24] [--workers 0 2] [--gpu-images-per-s 8 16 32]
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from results_io import save  # bench/ is the script's folder, so on sys.path

SIZES = {"gta5": (1914, 1052), "synthia": (1280, 760), "cityscapes": (2048, 1024)}  # width, height


def _picture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A smooth colour field with mild noise: compresses like a photo, not like white noise."""
    small = rng.integers(0, 256, (height // 32 + 1, width // 32 + 1, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC), dtype=np.int16)
    return np.clip(smooth + rng.integers(-6, 7, smooth.shape), 0, 255).astype(np.uint8)


def _ids(rng: np.random.Generator, width: int, height: int, high: int) -> np.ndarray:
    """Blocky class-id maps, as segmentation labels are."""
    small = rng.integers(0, high, (height // 64 + 1, width // 64 + 1), dtype=np.uint16)
    return np.asarray(Image.fromarray(small.astype(np.uint8)).resize((width, height), Image.NEAREST)).astype(np.uint16)


def write_datasets(root: Path, count: int, val: int = 0) -> dict[str, Path]:
    """`count` training files per dataset; with `val`, that many labelled validation files of GTA5 (its
    images from 24000 on) and Cityscapes (leftImg8bit/val with gtFine/val), so that a run can evaluate."""
    rng = np.random.default_rng(0)
    roots = {name: root / name for name in SIZES}
    for i in range(count):
        w, h = SIZES["gta5"]
        for sub in ("images", "labels"):
            (roots["gta5"] / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(_picture(rng, w, h)).save(roots["gta5"] / "images" / f"{i + 1:05d}.png")
        Image.fromarray(_ids(rng, w, h, 34).astype(np.uint8), "L").save(roots["gta5"] / "labels" / f"{i + 1:05d}.png")
        w, h = SIZES["synthia"]
        for sub in ("RGB", "GT/LABELS"):
            (roots["synthia"] / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(_picture(rng, w, h)).save(roots["synthia"] / "RGB" / f"{i:07d}.png")
        label = np.stack([np.zeros((h, w), np.uint16), np.zeros((h, w), np.uint16), _ids(rng, w, h, 23)], axis=-1)
        cv2.imwrite(str(roots["synthia"] / "GT" / "LABELS" / f"{i:07d}.png"), label)  # BGR: the id in R
        w, h = SIZES["cityscapes"]
        city = roots["cityscapes"] / "leftImg8bit" / "train" / "aachen"
        city.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_picture(rng, w, h)).save(city / f"aachen_{i:06d}_000019_leftImg8bit.png")
    for i in range(val):
        w, h = SIZES["gta5"]
        Image.fromarray(_picture(rng, w, h)).save(roots["gta5"] / "images" / f"{24000 + i:05d}.png")
        Image.fromarray(_ids(rng, w, h, 34).astype(np.uint8), "L").save(roots["gta5"] / "labels" / f"{24000 + i:05d}.png")
        w, h = SIZES["cityscapes"]
        stem = f"frankfurt_{i:06d}_000019"
        for sub, suffix, picture in (("leftImg8bit", "leftImg8bit", _picture(rng, w, h)),
                                     ("gtFine", "gtFine_labelIds", _ids(rng, w, h, 34).astype(np.uint8))):
            folder = roots["cityscapes"] / sub / "val" / "frankfurt"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(picture).save(folder / f"{stem}_{suffix}.png")
    return roots


def per_worker(dataset, items: int) -> float:
    """Items/s of dataset[(index, seed)] in this process: one loader worker's rate."""
    dataset[(0, 0)]  # warm: imports, first file open
    start = time.perf_counter()
    for k in range(items):
        dataset[(k % len(dataset), k)]
    return items / (time.perf_counter() - start)


def through_loader(dataset, items: int, workers: int) -> float:
    """Items/s through the training loader (batch 1) with `workers` processes, after its start-up."""
    from lsdseg.data.sampling import endless_batches

    batches = endless_batches(dataset, 1, 0, 0, workers)
    next(batches)
    start = time.perf_counter()
    for _ in range(items):
        next(batches)
    return items / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=6, help="files written per dataset")
    parser.add_argument("--items", type=int, default=24, help="items read per measurement")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="loader processes (0: in this process)")
    parser.add_argument("--gpu-images-per-s", type=float, nargs="+", default=[8.0, 16.0, 32.0],
                        help="GPU step rates (source + target images/s) to size the workers for")
    args = parser.parse_args()
    from lsdseg.config_io import load_config
    from lsdseg.data import train_dataset

    with tempfile.TemporaryDirectory(prefix="lsdseg-loader-") as tmp:
        start = time.perf_counter()
        roots = write_datasets(Path(tmp), args.files)
        written = round(time.perf_counter() - start, 1)
        sizes = {name: round(sum(p.stat().st_size for p in root.rglob("*.png")) / args.files / 2**20, 2) for name, root in roots.items()}
        rows = []
        for scale in ("vgg16", "public_code"):
            presets = ["vgg16"] if scale == "vgg16" else ["vgg16", "public_code"]
            for source in ("gta5", "synthia"):
                sets = [f"--data.source.root={roots[source]}", f"--data.target.root={roots['cityscapes']}",
                        f"--data.target_val.root={roots['cityscapes']}", "--data.target_labels=false"]
                cfg = load_config([*presets, source], sets).data
                roles = {source: (cfg.source, "source", True), "cityscapes": (cfg.target, "target", False)}
                for name, (domain, role, labelled) in roles.items():
                    if name == "cityscapes" and source == "synthia":
                        continue  # the same target as with gta5
                    dataset = train_dataset(domain, cfg, role, labelled)
                    row = {"scale": scale, "crop": [cfg.crop_height, cfg.crop_width], "dataset": name, "role": role,
                           "per_worker_images_per_s": round(per_worker(dataset, args.items), 2)}
                    for w in args.workers:
                        row[f"loader_{w}_workers_images_per_s"] = round(through_loader(dataset, args.items, w), 2)
                    row["workers_needed"] = {str(g): math.ceil(3 * g / 2 / row["per_worker_images_per_s"]) for g in args.gpu_images_per_s}
                    rows.append(row)
    report = {"benchmark": "loader", "files_per_dataset": args.files, "seconds_to_write": written, "mib_per_file_pair": sizes,
              "gpu_images_per_s": args.gpu_images_per_s, "rows": rows}
    save("loader", report)
    print(json.dumps(report, indent=2))
    head = " ".join(f"{'w=' + str(w):>7}" for w in args.workers)
    need = " ".join(f"{'G=' + format(g, 'g'):>6}" for g in args.gpu_images_per_s)
    print(f"\n{'scale':<12} {'crop':<9} {'dataset':<11} {'1 worker':>8} {head} | workers/domain {need}")
    for r in rows:
        loaders = " ".join(f"{r[f'loader_{w}_workers_images_per_s']:7.2f}" for w in args.workers)
        needed = " ".join(f"{r['workers_needed'][str(g)]:>6}" for g in args.gpu_images_per_s)
        print(f"{r['scale']:<12} {'x'.join(map(str, r['crop'])):<9} {r['dataset']:<11} {r['per_worker_images_per_s']:8.2f} {loaders} | "
              f"{'':<14} {needed}")

if __name__ == "__main__":
    main()
