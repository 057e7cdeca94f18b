"""The paper-size LSD-seg step on a GPU: VGG-16 FCN-8s at 512x1024, 1 source + 1 target image.

fp32 eager against bf16 autocast + channels_last, measured side by side in this one process: images/s
and peak GPU memory of a full D -> G -> F iteration. (The public code ran out of memory at this size on
a 12 GB GPU.) Without CUDA it prints a JSON line saying so and exits 0.

    python bench/gpu_step.py [--steps 20] [--height 512 --width 1024]
"""
from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext

import torch


def measure(channels_last: bool, bf16: bool, height: int, width: int, steps: int) -> dict:
    from lsdseg.config import LossWeights, ModelConfig, OptimConfig
    from lsdseg.models import build_nets
    from lsdseg.optim import build_optimizers
    from lsdseg.step import train_step

    device = torch.device("cuda")
    torch.manual_seed(0)
    nets = build_nets(ModelConfig(backbone="vgg16", g_width=64, d_width=128, d_blocks=3, g_blocks=2), adapt=True)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for net in nets.named().values():
        net.to(device, memory_format=fmt)
    opts = build_optimizers(nets, OptimConfig(f_lr=1e-5))
    x_s = torch.rand(1, 3, height, width, device=device).contiguous(memory_format=fmt)
    x_t = torch.rand(1, 3, height, width, device=device).contiguous(memory_format=fmt)
    y_s = torch.randint(0, 19, (1, height, width), device=device)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else nullcontext
    for _ in range(3):
        train_step(nets, opts, x_s, y_s, x_t, LossWeights(), autocast)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        train_step(nets, opts, x_s, y_s, x_t, LossWeights(), autocast)
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    result = {"channels_last": channels_last, "bf16": bf16, "step_ms": round(seconds * 1000, 1),
              "images_per_s": round(2 / seconds, 2), "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}
    del nets, opts
    torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"benchmark": "gpu_step", "skipped": "no CUDA device visible"}))
        return
    torch.backends.cudnn.benchmark = True
    runs = [measure(False, False, args.height, args.width, args.steps), measure(True, True, args.height, args.width, args.steps)]
    report = {"benchmark": "gpu_step", "device": torch.cuda.get_device_name(), "size": [args.height, args.width],
              "runs": runs, "speedup": round(runs[1]["images_per_s"] / runs[0]["images_per_s"], 2),
              "memory_ratio": round(runs[1]["peak_gib"] / runs[0]["peak_gib"], 2)}
    print(json.dumps(report, indent=2))
    print(f"\n{'variant':<28} {'images/s':>9} {'step ms':>8} {'peak GiB':>9}")
    for r in runs:
        name = "bf16 autocast + channels_last" if r["bf16"] else "fp32 eager"
        print(f"{name:<28} {r['images_per_s']:9.2f} {r['step_ms']:8.1f} {r['peak_gib']:9.2f}")


if __name__ == "__main__":
    main()
