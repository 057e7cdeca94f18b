"""Search quality on the built-in benchmark: does a sweep's confirmed winner beat the default weights on
seeds it has never seen, and for how much compute?

For every early-stopping strategy and sampler seed, one full `lsdseg sweep` (TPE, with its confirmation on
fresh seeds) runs; random search without early stopping, confirmed the same way, is the reference. Then
the declared winner and the default weights are retrained on `--fresh-seeds` seeds that no sweep used
(the defaults once, shared by every method), and compared seed by seed: paired difference with a 95 %
t interval. Also reported: trial-iterations spent (search + confirmation), wall time, and whether the
strategy's rule, replayed on the completed trials, would have stopped the winner.

    python bench/search_quality.py                                   # every strategy, sampler seeds 0 and 1
    python bench/search_quality.py --methods asha random --seeds 0   # a part of it
    python bench/search_quality.py --finished sweeps/NAME ...        # sweeps already run: their winners on fresh seeds

Prints a JSON document and a table; writes the JSON under bench/results/search_quality/.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

METHODS = {"asha": ("tpe", "asha"), "hyperband": ("tpe", "hyperband"), "asha_patient": ("tpe", "asha_patient"),
           "tpe_none": ("tpe", "none"), "pbt": ("random", "pbt"), "random": ("random", "none")}


def score_run(job: dict) -> dict:
    """One run of a configuration (or a PBT schedule) on one seed, from scratch; its score as a sweep computes it."""
    from lsdseg.config_io import PACKAGED, load_config, to_dict
    from lsdseg.sweep.schedule import run_schedule

    seed = {"train.seed": job["seed"]}
    schedule = [(0, {**job["params"], **seed}), *((step, {**values, **seed}) for step, values in job["changes"])]
    result = run_schedule(to_dict(load_config([PACKAGED / "sweep.yaml"])), schedule, {"train.threads": 1, "train.out_dir": job["out"]}, lambda ev: None)
    history = [h.miou for h in result.history]
    return {"seed": job["seed"], "history": history, "score": statistics.fmean(history[-job["smoothing"]:])}


def retrain(params: dict, changes: list, seeds: list[int], out: Path, smoothing: int, workers: int) -> list[dict]:
    jobs = [{"params": params, "changes": changes, "seed": s, "out": str(out / f"seed{s}"), "smoothing": smoothing} for s in seeds]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        return list(pool.map(score_run, jobs))


def sweep(method: str, seed: int, root: Path, concurrency: int) -> dict:
    from lsdseg.config_io import PACKAGED, load_config
    from lsdseg.sweep.runner import start_sweep
    from lsdseg.sweep.settings import SweepSettings

    searcher, scheduler = METHODS[method]
    running = {"max_concurrent": concurrency}
    if scheduler == "pbt":  # the whole population at once, sharing the cores the other methods use 2 at a time
        n = SweepSettings.__pydantic_fields__["num_samples"].default
        running = {"max_concurrent": n, "cpus_per_trial": concurrency / n}
    settings = SweepSettings(name=f"{method}-s{seed}-{time.strftime('%H%M%S')}", searcher=searcher, scheduler=scheduler,
                             sampler_seed=seed, references=False, **running,
                             root=str(root / "sweeps"), tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    start = time.perf_counter()
    results = start_sweep(settings, load_config([PACKAGED / "sweep.yaml"]))
    return summary(results, method, seed, round(time.perf_counter() - start, 1))


def finished(folder: str) -> dict:
    """A sweep that already ran (e.g. the README's main command, or bench/validators.py --tune's), as `sweep` returns it."""
    from lsdseg.sweep.results import SweepResults

    results = SweepResults(folder)
    s = results.state["settings"]
    method = next((m for m, pair in METHODS.items() if pair == (s["searcher"], s["scheduler"])), f"{s['searcher']}+{s['scheduler']}")
    return summary(results, method, s["sampler_seed"], None) | {"objective": results.objective}


def _declared(win, prefix: str) -> dict:
    return {f"{prefix}": win.candidate.label if win else None, f"{prefix}_params": win.candidate.params if win else None,
            f"{prefix}_changes": list(win.candidate.changes) if win else [], f"{prefix}_is_default": bool(win) and win.candidate.rank == 0}


def summary(results, method: str, seed: int, wall: float | None) -> dict:
    """The winner the sweep declared (by its --select rule), and the one the other rule would have declared from
    the same confirmation runs: the risk-aware rule is measured without another sweep."""
    from lsdseg.sweep.confirm import other_rule

    win = results.winner
    other, alternative = other_rule(results.confirmation, results.state["settings"].get("select", "mean")) or (None, None)
    return {"method": method, "sampler_seed": seed, "wall_seconds": wall,
            "trial_iterations": sum(t.steps for t in results.trials), "folder": str(results.folder),
            **_declared(win, "winner"), "other_rule": other, **_declared(alternative, "other_winner"),
            "confirmed_mean": win.mean if win else None, "confirmed_scores": win.scores if win else None,
            "stopping_replay": results.state.get("stopping_replay"),
            "statuses": {s: sum(t.status == s for t in results.search) for s in {t.status for t in results.search}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="sampler seeds")
    parser.add_argument("--fresh-seeds", type=int, nargs="+", default=[100, 101, 102], help="training seeds no sweep uses")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--out", default="bench/results/search_quality")
    parser.add_argument("--finished", nargs="+", default=[], metavar="SWEEP",
                        help="instead of running sweeps, take these finished sweeps' winners to the fresh seeds")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from lsdseg.sweep.confirm import paired
    from lsdseg.sweep.errors import SweepError
    from lsdseg.sweep.settings import SweepSettings

    smoothing = SweepSettings.__pydantic_fields__["smoothing"].default
    root = Path(args.out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    # finished sweeps are read before any training: a wrong folder fails at once
    try:
        planned = [finished(folder) for folder in args.finished] or [(m, seed) for m in args.methods for seed in args.seeds]
    except SweepError as e:
        parser.error(str(e))
    defaults = retrain({}, [], args.fresh_seeds, root / f"fresh-{stamp}" / "defaults", smoothing, args.concurrency)
    base = [r["score"] for r in defaults]

    def on_fresh_seeds(run: dict, prefix: str, folder: str) -> list[float]:
        """The declared configuration's scores on the fresh seeds (the defaults' are measured once)."""
        if run[f"{prefix}_is_default"]:
            return base
        return [r["score"] for r in retrain(run[f"{prefix}_params"], run[f"{prefix}_changes"], args.fresh_seeds,
                                            root / f"fresh-{stamp}" / folder, smoothing, args.concurrency)]

    def versus_defaults(fresh: list[float]) -> dict:  # the sweep's own statistics
        return vars(paired(dict(zip(args.fresh_seeds, fresh)), dict(zip(args.fresh_seeds, base))))

    runs = []
    for item in planned:
        run = item if isinstance(item, dict) else sweep(*item, root, args.concurrency)
        name = Path(run["folder"]).name
        fresh = on_fresh_seeds(run, "winner", name)
        run |= {"fresh_scores": fresh, "fresh_mean": statistics.fmean(fresh), "versus_defaults": versus_defaults(fresh)}
        if run["other_rule"] is not None:
            other = on_fresh_seeds(run, "other_winner", f"{name}-{run['other_rule']}")
            run |= {"other_fresh_scores": other, "other_versus_defaults": versus_defaults(other)}
        runs.append(run)
        report = {"benchmark": "search_quality", "fresh_seeds": args.fresh_seeds, "smoothing": smoothing,
                  "defaults_fresh": defaults, "defaults_fresh_mean": statistics.fmean(base), "runs": runs}
        (root / f"{stamp}.json").write_text(json.dumps(report, indent=2))  # after every sweep: a long run keeps its part
    print(json.dumps(report, indent=2))
    print(f"\ndefault weights on fresh seeds {args.fresh_seeds}: " + " ".join(f"{v * 100:.1f}" for v in base)
          + f" (mean {statistics.fmean(base) * 100:.1f})")
    print(f"{'method':<13} {'seed':>4} {'winner':<16} {'fresh mean':>10} {'vs defaults [95% CI]':<24} {'trial-its':>9} {'wall s':>7}  stopping replay")
    for r in runs:
        v = r["versus_defaults"]
        ci = f"{v['mean'] * 100:+.1f} [{v['low'] * 100:+.1f}, {v['high'] * 100:+.1f}]"
        print(f"{r['method']:<13} {r['sampler_seed']:>4} {str(r['winner']):<16} {r['fresh_mean'] * 100:10.1f} {ci:<24} "
              f"{r['trial_iterations']:9d} {'-' if r['wall_seconds'] is None else format(r['wall_seconds'], '7.0f'):>7}  {r['stopping_replay'] or '-'}")
    for r in runs:
        if r["other_rule"] is not None:
            v = r["other_versus_defaults"]
            print(f"  {r['method']} s{r['sampler_seed']}: --select {r['other_rule']} would have declared {r['other_winner']}: "
                  f"{v['mean'] * 100:+.1f} [{v['low'] * 100:+.1f}, {v['high'] * 100:+.1f}] against the defaults on the fresh seeds")


if __name__ == "__main__":
    main()
