"""Platform overhead of a sweep: its wall time against the ideal, on the same trials, in one run.

Ideal = the sum of the trials' own training time (Tune's time_total_s, measured inside each trial)
divided by the concurrency. No early stopping and no reference run, so every trial does the same work.

    python bench/sweep_overhead.py [--trials 4] [--concurrency 2] [--iterations 150]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from results_io import save  # bench/ is the script's folder, so on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=150, help="150 LSD iterations ~ 1 minute on one core")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    from lsdseg.config_io import load_config
    from lsdseg.sweep.runner import start_sweep
    from lsdseg.sweep.settings import SweepSettings

    work = Path(tempfile.mkdtemp(prefix="sweep-overhead-"))
    cfg = load_config(overrides=[f"--train.iterations={args.iterations}", f"--train.eval_every={args.iterations // 3}",
                                 *(o if o.startswith("--") else f"--{o}" for o in args.overrides)])
    settings = SweepSettings(name="overhead", num_samples=args.trials, max_concurrent=args.concurrency,
                             scheduler="none", first_look=1.0, references=False, verify_seeds=0, race_runs=0, root=str(work / "sweeps"),
                             tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    start = time.perf_counter()
    results = start_sweep(settings, cfg)
    wall = time.perf_counter() - start

    import pandas  # Ray Tune's result frames

    frames = [pandas.read_json(p, lines=True) for p in (results.folder / "trials").glob("*/result.json")]
    own = [float(f["time_total_s"].iloc[-1]) for f in frames]
    ideal = sum(own) / args.concurrency
    report = {"benchmark": "sweep_overhead", "trials": args.trials, "concurrency": args.concurrency,
              "iterations": args.iterations, "trial_seconds": [round(t, 1) for t in own],
              "ideal_seconds": round(ideal, 1), "sweep_wall_seconds": round(wall, 1),
              "overhead_fraction": round(wall / ideal - 1, 4)}
    save("sweep_overhead", report, 1)
    print(json.dumps(report, indent=2))
    print(f"\n{'trials x own time (s)':<28} {' '.join(f'{t:.0f}' for t in own)}")
    print(f"{'ideal (sum / concurrency)':<28} {ideal:8.1f} s")
    print(f"{'sweep wall (whole start_sweep)':<28} {wall:8.1f} s   overhead {100 * (wall / ideal - 1):+.1f} %")


if __name__ == "__main__":
    main()
