"""The adaptation table on the built-in benchmark: source-only, LSD-seg and target-oracle, several seeds.

Each run is a plain `run_training` with one torch thread; `--workers` runs go side by side. The number
reported is the target mIoU at the LAST iteration (no model selection on target labels).

    python bench/adaptation.py                     # 3 seeds x 3 modes, defaults of `lsdseg train`
    python bench/adaptation.py --seeds 0 --iterations 200 --set loss.f_adv=0.05

Prints a JSON document and a table; writes the JSON to bench/results/adaptation/<time>.json, the run folders
under bench/scratch/adaptation/.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from results_io import save  # bench/ is the script's folder, so on sys.path

MODES = ("source_only", "lsd", "target_oracle")


def one_run(job: dict) -> dict:
    from lsdseg.config_io import load_config
    from lsdseg.train import run_training

    overrides = job["overrides"] + [f"--train.mode={job['mode']}", f"--train.seed={job['seed']}", "--train.threads=1",
                                    f"--train.out_dir={job['out']}", f"--train.iterations={job['iterations']}"]
    cfg = load_config(job["config"], overrides)
    start = time.perf_counter()
    result = run_training(cfg)
    return {"mode": job["mode"], "seed": job["seed"], "status": result.status, "miou": result.miou,
            "best_miou": result.best_miou, "seconds": round(time.perf_counter() - start, 1),
            "per_class_iou": result.history[-1].per_class_iou if result.history else {}}


def summarise(runs: list[dict]) -> dict:
    out = {}
    for mode in MODES:
        values = [r["miou"] * 100 for r in runs if r["mode"] == mode]
        if values:
            # unrounded: the table rounds once, so its per-seed and min/max columns agree
            out[mode] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                         "min": min(values), "max": max(values), "n": len(values)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--iterations", type=int, default=None, help="default: the config's train.iterations")
    parser.add_argument("--config", default=None, help="YAML config applied to every run")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="section.key=value, repeatable")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "scratch" / "adaptation"), help="where the run folders go")
    args = parser.parse_args()

    from lsdseg.config_io import load_config

    overrides = [o if o.startswith("--") else f"--{o}" for o in args.overrides]
    iterations = args.iterations or load_config(args.config, overrides).train.iterations
    out = Path(args.out).resolve()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    jobs = [{"mode": m, "seed": s, "config": args.config, "overrides": overrides, "iterations": iterations,
             "out": str(out / f"{stamp}-{m}-seed{s}")} for s in args.seeds for m in args.modes]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        runs = list(pool.map(one_run, jobs))
    report = {"benchmark": "adaptation", "iterations": iterations, "overrides": overrides, "config": args.config,
              "wall_seconds": round(time.perf_counter() - start, 1), "summary": summarise(runs), "runs": runs}
    s = report["summary"]
    if "lsd" in s and "source_only" in s:
        report["lsd_minus_source_only"] = s["lsd"]["mean"] - s["source_only"]["mean"]
    if "target_oracle" in s and "source_only" in s:
        report["oracle_minus_source_only"] = s["target_oracle"]["mean"] - s["source_only"]["mean"]
    save("adaptation", report, 1, stamp)
    print(json.dumps(report, indent=2))
    print(f"\ntarget mIoU (%), {iterations} iterations, seeds {args.seeds}")
    print(f"{'mode':<14} {'mean':>6} {'std':>6} {'min':>6} {'max':>6}  runs")
    for mode, row in s.items():
        per_seed = " ".join(f"{r['miou'] * 100:.1f}" for r in runs if r["mode"] == mode)
        print(f"{mode:<14} {row['mean']:6.1f} {row['std']:6.1f} {row['min']:6.1f} {row['max']:6.1f}  {per_seed}")


if __name__ == "__main__":
    main()
