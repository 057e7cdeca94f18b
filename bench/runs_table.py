"""The table of recorded runs: real LSD-seg runs of a fixed pool of configurations, each on 8 seeds, every
evaluation with every validator. Selection protocols are judged by replaying thousands of sweeps on it
(bench/protocols.py) instead of one 20-minute sweep per data point, as HPOBench, YAHPO Gym and LCBench do.

The pool (POOL): the default weights, the configurations earlier sweeps named (redrawn exactly: random
search and TPE's start-up trials are pure functions of the sampler seed), and further random draws from
the `full` space. Every run is `lsdseg sweep`'s trial as the sweep trains it: the packaged sweep config
(300 iterations, evaluated every 50), one thread. Some cells continue to 1,000 iterations from their own
300-iteration checkpoint (`--extend`), which measures how well the ranking at 300 predicts the one at 1,000.

    python bench/runs_table.py                       # record every missing cell, 2 at a time
    python bench/runs_table.py --configs defaults random-s1-7 --seeds 0 1
    python bench/runs_table.py --extend 1000         # continue the EXTEND cells to 1,000 iterations
    python bench/runs_table.py --list                # the pool and what is recorded

Each finished run is one row of bench/results/runs/table.jsonl.gz (rewritten whole after every run, so an
interrupted recording keeps what it finished), with the commit, dirty flag, torch version, threads and
machine that produced it. Run folders (and the checkpoints --extend continues from) go to bench/scratch/.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterator, Optional

TABLE = Path(__file__).resolve().parent / "results" / "runs" / "table.jsonl.gz"
SCRATCH = Path(__file__).resolve().parent / "scratch" / "runs"
SEEDS = tuple(range(8))
SMOOTHING = 3  # a score is the mean of the last 3 evaluations, as a sweep's trial score is

# name -> (sampler, sampler seed, trial number) of the draw, in a study whose trial 0 is the default weights
# (as a sweep enqueues them); None: the default weights themselves
POOL: dict[str, Optional[tuple[str, int, int]]] = {
    "defaults": None,
    "random-s1-7": ("random", 1, 7),  # random search's trial 7 on sampler seed 1: "+10 on unused seeds" (issue 22)
    "random-s0-1": ("random", 0, 1),  # = TPE sampler seed 0's trial 1: the main command's winner at f0f0fab
    "random-s0-2": ("random", 0, 2),  # = TPE seed 0's trial 2: the entropy- and IM-tuned sweeps' winner
    "random-s1-4": ("random", 1, 4),  # = TPE seed 1's trial 4: the slow starter ASHA stopped
    **{f"random-s0-{n}": ("random", 0, n) for n in (3, 4, 5, 6, 7)},
    **{f"random-s1-{n}": ("random", 1, n) for n in (1, 2, 3, 5, 6)},
    **{f"random-s2-{n}": ("random", 2, n) for n in range(1, 10)},
}
# the cells continued to 1,000 iterations: the named configurations and three others, on the truth seeds
EXTEND = [(name, seed) for name in ("defaults", "random-s1-7", "random-s0-1", "random-s0-2", "random-s1-4",
                                    "random-s2-1", "random-s2-2", "random-s2-3") for seed in (5, 6, 7)]


def draw(sampler: str, seed: int, number: int) -> dict[str, Any]:
    """Trial `number` of a study of the `full` space whose trial 0 is the default weights. TPE's start-up
    trials are its internal random sampler's, so ("random", s, n) is also TPE seed s's trial n for the n
    TPE proposes before it has 3 finished trials (n <= 4 in a sweep running 2 at a time)."""
    import optuna

    from lsdseg.search_spaces.full import space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed), direction="maximize")
    study.enqueue_trial(defaults())
    for _ in range(number + 1):
        trial = study.ask()
        space(trial)
    return dict(trial.params)


def defaults() -> dict[str, Any]:
    """The base config's values of the `full` space's fields, as a sweep's trial 0 has them."""
    from lsdseg.config_io import PACKAGED, field_paths, load_config

    values = field_paths(load_config([PACKAGED / "sweep.yaml"]))
    return {k: values[k] for k in ("loss.f_adv", "loss.f_aux", "loss.g_adv", "loss.g_aux", "loss.g_rec", "optim.f_lr",
                                   "optim.g_lr", "optim.d_lr", "optim.g_beta1", "optim.d_beta1", "optim.f_lr_decay")}


def params_of(name: str) -> dict[str, Any]:
    how = POOL[name]
    return defaults() if how is None else draw(*how)


def read_table(path: Path = TABLE) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_table(rows: list[dict[str, Any]], path: Path = TABLE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    ordered = sorted(rows, key=lambda r: (list(POOL).index(r["config"]) if r["config"] in POOL else len(POOL), r["config"],
                                          r["seed"], r["iterations"]))
    with gzip.open(tmp, "wt", compresslevel=9) as f:
        for row in ordered:
            f.write(json.dumps(row, sort_keys=True) + "\n")
    os.replace(tmp, path)


def score(row: dict[str, Any], horizon: Optional[int] = None, key: str = "miou") -> float:
    """The run's score at `horizon` iterations (default: its last): the mean of the last SMOOTHING
    evaluations up to there, of target mIoU or of a validator (`key`)."""
    from lsdseg.objectives import smoothed

    evals = [e for e in row["evals"] if horizon is None or e["step"] <= horizon]
    return smoothed([e[key] if key == "miou" else e["validators"][key] for e in evals], SMOOTHING)


def cells(rows: list[dict[str, Any]], iterations: int) -> dict[tuple[str, int], dict[str, Any]]:
    """(config, seed) -> the row that trained it to at least `iterations`."""
    found = {}
    for row in rows:
        if row["iterations"] >= iterations and row["status"] == "completed":
            found.setdefault((row["config"], row["seed"]), row)
    return found


def _out(name: str, seed: int) -> Path:
    return SCRATCH / f"{name}-seed{seed}"


def run_cell(job: dict[str, Any]) -> dict[str, Any]:
    """One run, from scratch or (job["resume"]) from its own checkpoint; its row of the table."""
    from lsdseg.checkpoint import latest_checkpoint
    from lsdseg.config_io import PACKAGED, load_config, to_dict, with_values
    from lsdseg.runinfo import provenance
    from lsdseg.train import run_training

    base = to_dict(load_config([PACKAGED / "sweep.yaml"]))
    out = _out(job["config"], job["seed"])
    if not job["resume"]:
        shutil.rmtree(out, ignore_errors=True)  # left by an interrupted recording
    cfg = with_values(base, {**job["params"], "train.seed": job["seed"], "train.iterations": job["iterations"],
                             "train.threads": 1, "train.out_dir": str(out)})
    start = time.perf_counter()
    result = run_training(cfg, resume=latest_checkpoint(out) if job["resume"] else None)
    evals = [{"step": h.step, "miou": h.miou, "validators": h.validators, "per_class": h.per_class_iou, "losses": h.losses}
             for h in result.history]
    return {"config": job["config"], "params": job["params"], "seed": job["seed"], "iterations": job["iterations"],
            "eval_every": cfg.train.eval_every, "status": result.status, "message": result.message, "evals": evals,
            "wall_s": round(time.perf_counter() - start, 1), "resumed_from": result.history[0].step if job["resume"] else None,
            "device": "cpu", "recorded": time.strftime("%Y-%m-%dT%H:%M:%S"), **provenance(1)}


def plan(rows: list[dict[str, Any]], configs: list[str], seeds: list[int], extend: Optional[int]) -> Iterator[dict[str, Any]]:
    """The jobs still missing, config by config (a partial table holds whole configurations first)."""
    if extend is None:
        done = cells(rows, 300)
        for name in configs:
            params = params_of(name)
            for seed in seeds:
                if (name, seed) not in done:
                    yield {"config": name, "params": params, "seed": seed, "iterations": 300, "resume": False}
        return
    done = cells(rows, extend)
    for name, seed in EXTEND:
        if (name, seed) not in done and name in configs and seed in seeds:
            yield {"config": name, "params": params_of(name), "seed": seed, "iterations": extend, "resume": True}


def _keep_checkpoint(row: dict[str, Any]) -> bool:
    return (row["config"], row["seed"]) in EXTEND


def record(jobs: list[dict[str, Any]], workers: int) -> None:
    rows = read_table()
    print(f"{len(jobs)} runs to record, {workers} at a time; the table holds {len(rows)} rows", flush=True)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        pending = {pool.submit(run_cell, job): job for job in jobs[:workers]}
        queue = jobs[workers:]
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                job = pending.pop(future)
                row = future.result()
                rows = [r for r in rows if (r["config"], r["seed"], r["iterations"]) != (row["config"], row["seed"], row["iterations"])]
                rows.append(row)
                write_table(rows)
                if not _keep_checkpoint(row):
                    for f in sorted(_out(row["config"], row["seed"]).rglob("*"), reverse=True):
                        f.unlink() if f.is_file() else f.rmdir()
                print(f"{row['recorded']} {job['config']} seed {job['seed']} to {job['iterations']}: score {score(row) * 100:.1f} "
                      f"({row['wall_s']:.0f} s; {len(rows)} rows)", flush=True)
                if queue:
                    nxt = queue.pop(0)
                    pending[pool.submit(run_cell, nxt)] = nxt


def listing() -> str:
    rows = read_table()
    short, long_ = cells(rows, 300), cells(rows, 1000)
    lines = [f"{'config':<14} {'seeds at 300 (score)':<60} at 1000"]
    for name in POOL:
        got = " ".join(f"{score(short[(name, s)], 300) * 100:.1f}" if (name, s) in short else "-" for s in SEEDS)
        extended = " ".join(f"{score(long_[(name, s)], 1000) * 100:.1f}" for s in SEEDS if (name, s) in long_)
        lines.append(f"{name:<14} {got:<60} {extended}")
    return "\n".join(lines)


def main() -> None:
    from lsdseg.runlayout import RunLayout

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(POOL), choices=list(POOL))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS), choices=SEEDS)
    parser.add_argument("--extend", type=int, choices=[1000], help="continue the EXTEND cells to this many iterations")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--list", action="store_true", help="print the pool and what is recorded, then stop")
    args = parser.parse_args()
    if args.list:
        print(listing())
        return
    rows = read_table()
    if args.extend is not None:
        missing = [c for c in EXTEND
                   if c in cells(rows, 300) and not RunLayout(_out(*c)).checkpoints.is_dir() and c not in cells(rows, args.extend)]
        if missing:
            parser.error("--extend continues each cell from its own 300-iteration checkpoint; "
                         f"none in {_out(*missing[0])}: record it again first")
    record(list(plan(rows, args.configs, args.seeds, args.extend)), args.workers)
    print(listing())


if __name__ == "__main__":
    main()
