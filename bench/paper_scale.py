"""`lsdseg train` end to end at the paper's scale: the `vgg16` preset on GTA5 -> Cityscapes at 512x1024.

Writes real-format files at the datasets' own sizes (bench/loader.py's writer: GTA5 1914x1052, Cityscapes
2048x1024, training and labelled validation files) and runs `run_training` on them exactly as
`lsdseg train --config vgg16 --config gta5` does (F from random weights: no VGG-16 file is downloaded), once
eagerly and once with `train.compile`. For each: whether it completed with finite losses, iterations/s over
the second half (after cuDNN's tuning and compilation; it includes the loaders, one evaluation of the
validation files and one checkpoint: 200 M parameters of F, G and D with their optimizers' state, so it is
the loop's rate, below bench/gpu_step.py's step rate), the whole run's wall time, the peak GPU memory, and
the losses and validators of the last evaluation.

    python bench/paper_scale.py [--iterations 100] [--files 8] [--val 2] [--variants eager compile]
    python bench/paper_scale.py --device cpu --iterations 4 --files 2 --val 1 --variants eager \
        --set data.crop_height=64 data.crop_width=128 data.eval_height=64 data.eval_width=128 data.num_workers=0
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loader import write_datasets  # noqa: E402  (bench/ is not a package)
from results_io import save  # noqa: E402


def run(roots: dict[str, Path], out: Path, iterations: int, compiled: bool, device: str, extra: list[str]) -> dict:
    from lsdseg.config_io import load_config
    from lsdseg.train import run_training

    half = iterations // 2
    sets = [f"--data.source.root={roots['gta5']}", f"--data.target.root={roots['cityscapes']}",
            f"--data.target_val.root={roots['cityscapes']}", "--model.pretrained=null",
            f"--train.iterations={iterations}", f"--train.eval_every={half}", f"--train.out_dir={out}",
            f"--train.compile={str(compiled).lower()}", f"--train.device={device}", *extra]
    cfg = load_config(["vgg16", "gta5"], sets)
    times: list[float] = []
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = run_training(cfg, report=lambda rep: times.append(time.perf_counter()))
    seconds = time.perf_counter() - start
    last = result.history[-1] if result.history else None
    return {
        "variant": "compile" if compiled else "eager", "status": result.status, "message": result.message,
        "iterations": result.step, "seconds": round(seconds, 1),
        "second_half_iterations_per_s": round((iterations - half) / (times[1] - times[0]), 2) if len(times) == 2 else None,
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
        "losses_finite": bool(last and all(math.isfinite(v) for v in last.losses.values())),
        "last_losses": {k: round(v, 4) for k, v in last.losses.items()} if last else None,
        "last_target_miou": last.miou if last else None,
        "last_validators": last.validators if last else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--files", type=int, default=8, help="training files written per dataset")
    parser.add_argument("--val", type=int, default=2, help="labelled validation files written per dataset")
    parser.add_argument("--variants", nargs="+", choices=["eager", "compile"], default=["eager", "compile"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE",
                        help="more overrides, e.g. smaller crops for a code-path check on the CPU")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"benchmark": "paper_scale", "skipped": "no CUDA device visible"}))
        return
    with tempfile.TemporaryDirectory(prefix="lsdseg-paper-scale-") as tmp:
        start = time.perf_counter()
        roots = write_datasets(Path(tmp) / "data", args.files, args.val)
        written = round(time.perf_counter() - start, 1)
        runs = [run(roots, Path(tmp) / f"run-{v}", args.iterations, v == "compile", args.device, [f"--{o}" for o in args.set])
                for v in args.variants]
    report = {"benchmark": "paper_scale", "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
              "preset": "vgg16 + gta5, 512x1024, F from random weights", "files": args.files, "val_files": args.val,
              "seconds_to_write": written, "runs": runs}
    save("paper_scale", report)
    print(json.dumps(report, indent=2))
    print(f"\n{'variant':<8} {'status':<10} {'its':>5} {'it/s (2nd half)':>16} {'seconds':>8} {'peak GiB':>9} {'finite':>7}")
    for r in runs:
        print(f"{r['variant']:<8} {r['status']:<10} {r['iterations']:>5} {str(r['second_half_iterations_per_s']):>16} "
              f"{r['seconds']:>8} {str(r['peak_gib']):>9} {str(r['losses_finite']):>7}")


if __name__ == "__main__":
    main()
