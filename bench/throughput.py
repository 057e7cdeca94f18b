"""Training-step throughput of the small backbone on CPU next to the data pipeline's own throughput.

Both are measured in this one process, one after the other, so their ratio is meaningful on a noisy
machine: the loader must deliver batches much faster than the step consumes them.

    python bench/throughput.py [--steps 30] [--threads 2] [--set data.num_workers=1]
"""
from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext

import torch
from results_io import save  # bench/ is the script's folder, so on sys.path


def rate(fn, n: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from lsdseg.config_io import load_config
    from lsdseg.data import train_dataset
    from lsdseg.data.sampling import endless_batches
    from lsdseg.models import build_nets
    from lsdseg.optim import build_optimizers
    from lsdseg.step import train_step

    cfg = load_config(overrides=[o if o.startswith("--") else f"--{o}" for o in args.overrides])
    d = cfg.data
    source = endless_batches(train_dataset(d.source, d, "source", labelled=True), d.batch_size, 0, 0, d.num_workers)
    target = endless_batches(train_dataset(d.target, d, "target", labelled=False), d.batch_size, 1, 0, d.num_workers)
    batch_s, batch_t = next(source), next(target)

    def load_pair():
        next(source), next(target)

    results = {"benchmark": "throughput", "threads": args.threads, "batch_size": d.batch_size,
               "crop": [d.crop_height, d.crop_width], "num_workers": d.num_workers,
               "loader_batch_pairs_per_s": rate(load_pair, args.steps * 4, 5)}
    for mode in ("lsd", "source_only"):
        torch.manual_seed(0)
        nets = build_nets(cfg.model, adapt=mode == "lsd")
        opts = build_optimizers(nets, cfg.optim)
        x_t = batch_t["image"] if mode == "lsd" else None
        results[f"{mode}_steps_per_s"] = rate(
            lambda nets=nets, opts=opts, x_t=x_t: train_step(nets, opts, batch_s["image"], batch_s["label"], x_t, cfg.loss, nullcontext),
            args.steps, 3)
    for mode in ("lsd", "source_only"):
        results[f"{mode}_images_per_s"] = results[f"{mode}_steps_per_s"] * d.batch_size * (2 if mode == "lsd" else 1)
        results[f"loader_headroom_vs_{mode}"] = results["loader_batch_pairs_per_s"] / results[f"{mode}_steps_per_s"]
    results = {k: round(v, 2) if isinstance(v, float) else v for k, v in results.items()}
    save("throughput", results, args.threads)
    print(json.dumps(results, indent=2))
    print(f"\n{'what':<28} {'per second':>12}")
    print(f"{'loader (source+target batch)':<28} {results['loader_batch_pairs_per_s']:12.1f}")
    for mode in ("lsd", "source_only"):
        print(f"{mode + ' train step':<28} {results[f'{mode}_steps_per_s']:12.2f}   "
              f"loader headroom x{results[f'loader_headroom_vs_{mode}']:.0f}")


if __name__ == "__main__":
    main()
