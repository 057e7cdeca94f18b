"""The paper-size LSD-seg step: VGG-16 FCN-8s at 512x1024, D -> G -> F, as `lsdseg train` runs it.

Three variants measured side by side in this one process, at batch 1 + 1 and at the largest batch that fits
(found by doubling until the device runs out of memory): fp32 eager; bf16 autocast + channels_last (the
defaults of `lsdseg train` on CUDA); and the same + torch.compile (`train.compile`). For each: images/s
(source + target), peak memory, and model FLOP utilisation (the step's FLOPs, counted once per batch on an
eager step with torch.utils.flop_counter, per second, over the device's peak; bf16 variants against the
bf16 tensor peak, fp32 against the TF32 peak where cuDNN may use TF32 (PyTorch's default), else the fp32
one; only where the peak of the device is known or given). (The public code ran out of memory at this size
on a 12 GB GPU.)

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
from results_io import save  # bench/ is the script's folder, so on sys.path
from torch.utils.flop_counter import FlopCounterMode

# dense peak TFLOP/s from the vendors' data sheets (SXM parts): fp32 without tensor cores, TF32 and bf16 tensor
# cores. PyTorch runs fp32 convolutions in TF32 by default (torch.backends.cudnn.allow_tf32), so the fp32
# variant is held against the TF32 peak when that is on.
PEAKS = {"H100": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.0}, "H200": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.0},
         "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0}}
VARIANTS = {"fp32 eager": (False, False, False), "bf16 + channels_last": (True, True, False),
            "bf16 + channels_last + compile": (True, True, True)}
EAGER_TWIN = {"bf16 + channels_last + compile": "bf16 + channels_last"}


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


def measure(device: torch.device, variant: str, batch: int, height: int, width: int, steps: int,
            count_flops: bool = True) -> dict:
    """Times `steps` steps after 3 warm-ups; FLOPs are counted with one more step (eager variants only: the
    counter does not see inside compiled graphs, and a step's FLOPs do not depend on how it runs)."""
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
    flops = None
    if count_flops and not compiled:
        with FlopCounterMode(display=False) as counter:  # one step, after the timing: counting slows it down
            train_step(nets, opts, x_s, y_s, x_t, weights, autocast)
        flops = round(counter.get_total_flops() / 1e12, 3)
    result = {"variant": variant, "batch": batch, "step_ms": round(seconds * 1000, 1), "images_per_s": round(2 * batch / seconds, 2),
              "tflop_per_step": flops,
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
            measure(device, variant, batch, height, width, steps=1, count_flops=False)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
        fits, batch = batch, batch * 2
    return fits


def measure_fitting(device: torch.device, variant: str, batch: int, height: int, width: int, steps: int) -> dict:
    """`measure` at `batch`, halving it while the step runs out of memory."""
    while True:
        try:
            return measure(device, variant, batch, height, width, steps)
        except torch.OutOfMemoryError:
            if batch == 1:
                raise
            torch.cuda.empty_cache()
            batch //= 2


def mfu(run: dict, peaks: dict | None) -> float | None:
    if peaks is None or run["tflop_per_step"] is None:
        return None
    kind = "bf16" if VARIANTS[run["variant"]][0] else "tf32" if torch.backends.cudnn.allow_tf32 and "tf32" in peaks else "fp32"
    peak = peaks[kind] * 1e12
    return round(run["tflop_per_step"] * 1e12 / (run["step_ms"] / 1000) / peak, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--max-batch", type=int, default=16, help="largest batch per domain tried")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="a subset, e.g. the compiled one alone (its compilations take minutes)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--peak-tflops", type=float, nargs=3, metavar=("FP32", "TF32", "BF16"), help="the device's peaks, if not in PEAKS")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"benchmark": "gpu_step", "skipped": "no CUDA device visible"}))
        return
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peaks = (dict(zip(("fp32", "tf32", "bf16"), args.peak_tflops, strict=False)) if args.peak_tflops
             else next((v for k, v in PEAKS.items() if k in name), None))
    runs, largest, flops = [], {}, {}
    for variant in args.variants:
        # Compiling is the slow part, so the compiled variant starts from the batch its eager twin fits
        # (compiled graphs keep fewer activations), or from --max-batch alone, and halves it on running out of memory.
        twin = EAGER_TWIN.get(variant)
        largest[variant] = (largest.get(twin, args.max_batch) if twin
                            else largest_batch(device, variant, args.height, args.width, args.max_batch))
        for batch in sorted({1, largest[variant]}):
            run = measure_fitting(device, variant, batch, args.height, args.width, args.steps)
            flops.setdefault(run["batch"], run["tflop_per_step"])
            run["tflop_per_step"] = flops.get(run["batch"])
            runs.append(run | {"mfu": mfu(run, peaks)})
            print(json.dumps(runs[-1]), flush=True)  # as it goes: a run cut short keeps what it measured
    base = next((r for r in runs if r["variant"] == "fp32 eager" and r["batch"] == 1), None)
    for r in runs:  # ratios only within this one process: another run is another machine state
        r["speedup_vs_fp32_eager_batch1"] = round(r["images_per_s"] / base["images_per_s"], 2) if base else None
    report = {"benchmark": "gpu_step", "device": name, "torch": torch.__version__, "size": [args.height, args.width],
              "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32, "peaks_tflops": peaks, "runs": runs}
    save("gpu_step", report)
    print(json.dumps(report, indent=2))
    print(f"\n{'variant':<32} {'batch':>5} {'images/s':>9} {'step ms':>8} {'peak GiB':>9} {'MFU':>6} {'vs fp32 b1':>10}")
    for r in runs:
        print(f"{r['variant']:<32} {r['batch']:>5} {r['images_per_s']:9.2f} {r['step_ms']:8.1f} {str(r['peak_gib']):>9} "
              f"{str(r['mfu']):>6} {str(r['speedup_vs_fp32_eager_batch1']):>10}")


if __name__ == "__main__":
    main()
