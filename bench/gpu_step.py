"""The paper-size LSD-seg step: VGG-16 FCN-8s at 512x1024, D -> G -> F, as `lsdseg train` runs it.

Three variants measured side by side in this one process, at batch 1 + 1 and at the largest batch that fits
(found by doubling until the device runs out of memory): fp32 eager; bf16 autocast + channels_last (the
defaults of `lsdseg train` on CUDA); and the same + torch.compile (`train.compile`). For each: images/s
(source + target), peak memory, and model FLOP utilisation (the step's FLOPs, counted once with
torch.utils.flop_counter, per second, over the device's peak; bf16 variants against the bf16 tensor peak,
fp32 against the fp32 peak; only where the peak of the device is known or given). (The public code ran
out of memory at this size on a 12 GB GPU.)

    python bench/gpu_step.py [--steps 20] [--height 512 --width 1024] [--max-batch 16]
    python bench/gpu_step.py --device cpu --height 64 --width 128 --steps 2 --max-batch 1   # the code path

Without CUDA and without --device cpu it prints a JSON line saying so and exits 0.
"""
from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext

import torch
from torch.utils.flop_counter import FlopCounterMode

# dense peak TFLOP/s (fp32 without tensor cores, bf16 tensor cores), from the vendors' data sheets
PEAKS = {"H100": {"fp32": 67.0, "bf16": 989.0}, "H200": {"fp32": 67.0, "bf16": 989.0}, "A100": {"fp32": 19.5, "bf16": 312.0}}
VARIANTS = {"fp32 eager": (False, False, False), "bf16 + channels_last": (True, True, False),
            "bf16 + channels_last + compile": (True, True, True)}


def _setup(device: torch.device, batch: int, height: int, width: int, channels_last: bool, compiled: bool):
    from lsdseg.config import ModelConfig, OptimConfig
    from lsdseg.models import build_nets
    from lsdseg.optim import build_optimizers

    torch.manual_seed(0)
    nets = build_nets(ModelConfig(backbone="vgg16", g_width=64, d_width=128, d_blocks=3, g_blocks=2), adapt=True)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for net in nets.named().values():
        net.to(device, memory_format=fmt)
        if compiled:
            net.compile()  # as train.compile does
    opts = build_optimizers(nets, OptimConfig(f_lr=1e-5))
    x_s = torch.rand(batch, 3, height, width, device=device).contiguous(memory_format=fmt)
    x_t = torch.rand(batch, 3, height, width, device=device).contiguous(memory_format=fmt)
    y_s = torch.randint(0, 19, (batch, height, width), device=device)
    return nets, opts, (x_s, y_s, x_t)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(device: torch.device, variant: str, batch: int, height: int, width: int, steps: int) -> dict:
    from lsdseg.config import LossWeights
    from lsdseg.step import train_step

    bf16, channels_last, compiled = VARIANTS[variant]
    nets, opts, (x_s, y_s, x_t) = _setup(device, batch, height, width, channels_last, compiled)
    weights = LossWeights(convention="summed")  # the vgg16 preset's balance
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else nullcontext
    for _ in range(3):  # warm-up: cuDNN's autotuning, and compilation
        train_step(nets, opts, x_s, y_s, x_t, weights, autocast)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        losses = train_step(nets, opts, x_s, y_s, x_t, weights, autocast)
    _sync(device)
    seconds = (time.perf_counter() - start) / steps
    with FlopCounterMode(display=False) as counter:  # one step, after the timing: counting slows it down
        train_step(nets, opts, x_s, y_s, x_t, weights, autocast)
    result = {"variant": variant, "batch": batch, "step_ms": round(seconds * 1000, 1), "images_per_s": round(2 * batch / seconds, 2),
              "tflop_per_step": round(counter.get_total_flops() / 1e12, 3),
              "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
              "losses_finite": bool(all(torch.isfinite(v) for v in losses.values()))}
    del nets, opts
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def largest_batch(device: torch.device, variant: str, height: int, width: int, limit: int) -> int:
    """The largest power-of-two batch (per domain) whose step fits in the device's memory, up to `limit`."""
    fits, batch = 1, 2
    while batch <= limit:
        try:
            measure(device, variant, batch, height, width, steps=1)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
        fits, batch = batch, batch * 2
    return fits


def mfu(run: dict, peaks: dict | None) -> float | None:
    if peaks is None:
        return None
    peak = peaks["bf16" if VARIANTS[run["variant"]][0] else "fp32"] * 1e12
    return round(run["tflop_per_step"] * 1e12 / (run["step_ms"] / 1000) / peak, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--max-batch", type=int, default=16, help="largest batch per domain tried")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--peak-tflops", type=float, nargs=2, metavar=("FP32", "BF16"), help="the device's peaks, if not in PEAKS")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"benchmark": "gpu_step", "skipped": "no CUDA device visible"}))
        return
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peaks = dict(zip(("fp32", "bf16"), args.peak_tflops)) if args.peak_tflops else next((v for k, v in PEAKS.items() if k in name), None)
    runs = []
    for variant in VARIANTS:
        batches = sorted({1, largest_batch(device, variant, args.height, args.width, args.max_batch)})
        for batch in batches:
            run = measure(device, variant, batch, args.height, args.width, args.steps)
            runs.append(run | {"mfu": mfu(run, peaks)})
    base = next(r for r in runs if r["variant"] == "fp32 eager" and r["batch"] == 1)
    for r in runs:
        r["speedup_vs_fp32_eager_batch1"] = round(r["images_per_s"] / base["images_per_s"], 2)
    report = {"benchmark": "gpu_step", "device": name, "size": [args.height, args.width], "peaks_tflops": peaks, "runs": runs}
    print(json.dumps(report, indent=2))
    print(f"\n{'variant':<32} {'batch':>5} {'images/s':>9} {'step ms':>8} {'peak GiB':>9} {'MFU':>6} {'vs fp32 b1':>10}")
    for r in runs:
        print(f"{r['variant']:<32} {r['batch']:>5} {r['images_per_s']:9.2f} {r['step_ms']:8.1f} {str(r['peak_gib']):>9} "
              f"{str(r['mfu']):>6} {r['speedup_vs_fp32_eager_batch1']:>10}")


if __name__ == "__main__":
    main()
