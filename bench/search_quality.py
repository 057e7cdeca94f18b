"""Search quality on the built-in benchmark: the default `lsdseg sweep` (TPE + ASHA) against the default
weights and against random search without early stopping, at the same number of trials.

Reports the best final target mIoU of each, the default weights' mIoU (Optuna trial 0 of each sweep),
and the trial-iterations each sweep spent. One sweep per method: a single draw, not a distribution.

    python bench/search_quality.py [--trials 14] [--concurrency 2]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def run(method: str, searcher: str, scheduler: str, trials: int, concurrency: int, root: Path, seed: int) -> dict:
    from lsdseg.config_io import PACKAGED, load_config
    from lsdseg.sweep.runner import start_sweep
    from lsdseg.sweep.settings import SweepSettings

    cfg = load_config([PACKAGED / "sweep.yaml"])
    settings = SweepSettings(name=f"{method}-{time.strftime('%H%M%S')}", num_samples=trials, max_concurrent=concurrency,
                             searcher=searcher, scheduler=scheduler, sampler_seed=seed, references=method == "tpe_asha",
                             root=str(root / "sweeps"), tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    start = time.perf_counter()
    outcome = start_sweep(settings, cfg)
    completed = [r for r in outcome.rows if r.status == "completed"]
    return {"method": method, "wall_seconds": round(time.perf_counter() - start, 1),
            "best_miou": max((r.miou for r in completed), default=float("nan")),
            "best_params": completed[0].params if completed else None,
            "default_weights_miou": outcome.references.get("default_weights"),
            "trial_iterations": sum(r.steps for r in outcome.rows),
            "statuses": {s: sum(r.status == s for r in outcome.rows) for s in {r.status for r in outcome.rows}},
            "references": outcome.references, "folder": str(outcome.folder)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", default=["tpe_asha", "random_full"], choices=["tpe_asha", "random_full"])
    parser.add_argument("--out", default="bench/results/search_quality")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    root = Path(args.out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    methods = {"tpe_asha": ("tpe", "asha"), "random_full": ("random", "none")}
    runs = [run(m, *methods[m], args.trials, args.concurrency, root, args.seed) for m in args.methods]
    report = {"benchmark": "search_quality", "trials": args.trials, "runs": runs}
    (root / f"{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"\n{'method':<14} {'best mIoU':>9} {'defaults':>9} {'trial-its':>9} {'wall s':>7}  outcomes")
    for r in runs:
        defaults = f"{r['default_weights_miou'] * 100:9.1f}" if r["default_weights_miou"] is not None else f"{'-':>9}"
        print(f"{r['method']:<14} {r['best_miou'] * 100:9.1f} {defaults} {r['trial_iterations']:9d} {r['wall_seconds']:7.0f}  {r['statuses']}")
    if runs[0]["references"]:
        print("references: " + ", ".join(f"{k} {v * 100:.1f}" for k, v in runs[0]["references"].items()))


if __name__ == "__main__":
    main()
