"""Search quality on the built-in benchmark, with real sweeps: does what `lsdseg sweep` ships beat the
default weights on seeds that nothing has used?

For each sampler seed the main command runs as shipped (`lsdseg sweep`, its default settings); then what it
shipped, its candidate (where it declined to ship one) and the default weights are retrained on fresh
seeds of this comparison alone: FROM + 10 x sampler seed + 0..4 (--fresh-from; each comparison takes a FROM no
earlier one used: 500 for the main command's first shape, 600 for its first look), so no two comparisons share a
default run.
Compared seed by seed (paired difference, 95 % t interval). Also reported: the sweep's own verified figure,
its runs, and its wall time.

    python bench/search_quality.py                      # sampler seeds 0 and 1
    python bench/search_quality.py --seeds 2            # another one
    python bench/search_quality.py --finished sweeps/NAME ...   # sweeps already run (e.g. the README's main command)
    python bench/search_quality.py --finished sweeps/NAME --seeds 1   # both
    python bench/search_quality.py --fresh-from 700             # a new comparison on seeds no earlier one used

Writes bench/results/search_quality/<time>.json (after every sweep: a long run keeps what it measured);
sweeps and retrainings go to bench/scratch/search_quality/.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT, SCRATCH = HERE / "results" / "search_quality", HERE / "scratch" / "search_quality"
FRESH = 5


def fresh_seeds(sampler_seed: int, first: int) -> list[int]:
    return [first + 10 * sampler_seed + i for i in range(FRESH)]


def score_run(job: dict) -> dict:
    """One run of a configuration on one seed, from scratch, at the sweep's length; its score as a sweep computes it."""
    from lsdseg.config_io import PACKAGED, load_config, to_dict, with_values
    from lsdseg.objectives import smoothed
    from lsdseg.train import run_training

    cfg = with_values(to_dict(load_config([PACKAGED / "sweep.yaml"])),
                      {**job["params"], "train.seed": job["seed"], "train.threads": 1, "train.out_dir": job["out"],
                       "train.iterations": job["iterations"]})
    history = [h.miou for h in run_training(cfg).history]
    return {"seed": job["seed"], "history": history, "score": smoothed(history, job["smoothing"])}


def retrain(params: dict, seeds: list[int], out: Path, iterations: int, smoothing: int, workers: int) -> dict[int, float]:
    jobs = [{"params": params, "seed": s, "out": str(out / f"seed{s}"), "iterations": iterations, "smoothing": smoothing} for s in seeds]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        return {r["seed"]: r["score"] for r in pool.map(score_run, jobs)}


def sweep(seed: int, concurrency: int) -> tuple[str, float]:
    from lsdseg.config_io import PACKAGED, load_config
    from lsdseg.sweep.runner import start_sweep
    from lsdseg.sweep.settings import SweepSettings

    SCRATCH.mkdir(parents=True, exist_ok=True)
    settings = SweepSettings(name=f"main-s{seed}-{time.strftime('%m%d-%H%M%S')}", sampler_seed=seed, max_concurrent=concurrency,
                             root=str(SCRATCH / "sweeps"), tracking_uri=f"sqlite:///{SCRATCH / 'mlflow.db'}")
    start = time.perf_counter()
    results = start_sweep(settings, load_config([PACKAGED / "sweep.yaml"]))
    return str(results.folder), round(time.perf_counter() - start, 1)


def summary(folder: str) -> dict:
    from lsdseg.sweep.results import SweepResults

    results = SweepResults(folder)
    row = results.best_row or {}
    verified = [look for look in row.get("looks", []) if look["evidence"]]
    return {"folder": folder, "sampler_seed": results.settings.sampler_seed, "shipped": row.get("shipped"),
            "configuration": row.get("configuration"), "params": row.get("params"), "reason": row.get("reason"),
            "candidate": row.get("candidate"), "verified": verified[0]["evidence"] if verified else None,
            "horizon": row.get("horizon"), "runs": len(results.trials), "trial_iterations": sum(t.steps for t in results.trials)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="sampler seeds to sweep (default: 0 and 1 without --finished)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--finished", nargs="+", default=[], metavar="SWEEP", help="sweeps already run, instead of new ones")
    parser.add_argument("--fresh-from", type=int, default=600, help="the first fresh seed: one no earlier comparison used")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from lsdseg.config_io import PACKAGED, load_config
    from lsdseg.runinfo import provenance
    from lsdseg.sweep.errors import SweepError
    from lsdseg.sweep.verify import paired

    try:  # finished sweeps are read before any training: a wrong folder fails at once
        planned = [summary(folder) | {"wall_seconds": None} for folder in args.finished]
        planned += args.seeds if args.seeds is not None else [] if args.finished else [0, 1]
    except SweepError as e:
        parser.error(str(e))
    smoothing = 3
    base = load_config([PACKAGED / "sweep.yaml"])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    OUT.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "search_quality", **provenance(1), "fresh": f"{args.fresh_from} + 10 x sampler seed + 0..4", "runs": []}
    for item in planned:
        if isinstance(item, int):
            folder, wall = sweep(item, args.concurrency)
            item = summary(folder) | {"wall_seconds": wall}
        seeds, iterations = fresh_seeds(item["sampler_seed"], args.fresh_from), item["horizon"] or base.train.iterations
        work = SCRATCH / "fresh" / f"{Path(item['folder']).name}"
        defaults = retrain({}, seeds, work / "defaults", iterations, smoothing, args.concurrency)
        item |= {"fresh_seeds": seeds, "defaults_fresh": defaults}
        for role in ("shipped", "candidate"):
            params = item["params"] if role == "shipped" else (item["candidate"] or {}).get("params")
            if (params is None or (role == "shipped" and item["shipped"] == "defaults")
                    or (role == "candidate" and item["shipped"] == "candidate")):
                continue
            scores = retrain(params, seeds, work / role, iterations, smoothing, args.concurrency)
            item |= {f"{role}_fresh": scores, f"{role}_versus_defaults": vars(paired(scores, defaults))}
        report["runs"].append(item)
        (OUT / f"{stamp}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    for r in report["runs"]:
        print(f"\nsampler seed {r['sampler_seed']}: shipped {r['configuration']} ({r['reason']})")
        print(f"  defaults on fresh seeds {r['fresh_seeds']}: " + " ".join(f"{v * 100:.1f}" for v in r["defaults_fresh"].values()))
        for role in ("shipped", "candidate"):
            if f"{role}_versus_defaults" in r:
                v = r[f"{role}_versus_defaults"]
                print(f"  {role}: {v['mean'] * 100:+.1f} [{v['low'] * 100:+.1f}, {v['high'] * 100:+.1f}] "
                      "against the defaults on the fresh seeds")


if __name__ == "__main__":
    main()
