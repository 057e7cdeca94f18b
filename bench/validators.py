"""Label-free validators on the built-in benchmark: their cost, how well each tracks target mIoU, and what
tuning on each one gives.

    python bench/validators.py --cost                 # one evaluation with and without the validators
    python bench/validators.py --rank --trials 12     # a random search, no early stopping: correlations, regrets
    python bench/validators.py --tune                 # one sweep per objective, each winner confirmed on fresh seeds
    python bench/validators.py --merge A.json B.json  # the --tune parts of earlier runs, compared as one run

`--tune` runs `lsdseg sweep` as shipped once per objective (target_miou and every validator) and compares,
seed by seed, the target mIoU of each confirmed winner (the mean of its last evaluations, as the score is)
with the target_miou-tuned winner's and the default weights' on the same seeds (paired, 95 % t interval).
Prints a JSON document and a table; writes the JSON under bench/results/validators/.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

OBJECTIVES = ("target_miou", "source_miou", "entropy", "im", "snd", "dev")


def cost(repeats: int = 3) -> dict:
    """Seconds of one evaluation of an untrained F: target mIoU alone, and with every validator."""
    import torch
    from lsdseg.config_io import with_overrides
    from lsdseg.data import prepare, protocol_classes, val_dataset, val_loader
    from lsdseg.evaluate import evaluate, validate
    from lsdseg.models import build_nets

    torch.set_num_threads(1)
    cfg = with_overrides({})
    prepare(cfg.data, False)
    f = build_nets(cfg.model, True).f
    target = val_loader(val_dataset(cfg.data.target_val, cfg.data), cfg.data)
    source = val_loader(val_dataset(cfg.data.source, cfg.data, "source_val"), cfg.data)
    classes, cpu = protocol_classes(cfg.data), torch.device("cpu")
    plain, full = [], []
    for _ in range(repeats):  # side by side, alternating
        start = time.perf_counter()
        evaluate(f, target, cpu, nullcontext, classes)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        validate(f, target, source, cpu, nullcontext, classes)
        full.append(time.perf_counter() - start)
    return {"target_images": len(target.dataset), "source_images": len(source.dataset), "evaluate_s": plain, "validate_s": full,
            "ratio": statistics.median(full) / statistics.median(plain)}


def _sweep(root: Path, name: str, objective: str, **settings):
    from lsdseg.config_io import PACKAGED, load_config
    from lsdseg.sweep.runner import start_sweep
    from lsdseg.sweep.settings import SweepSettings

    cfg = load_config([PACKAGED / "sweep.yaml"], [f"--train.objective={objective}"])
    s = SweepSettings(name=f"{name}-{time.strftime('%H%M%S')}", references=False, root=str(root / "sweeps"),
                      tracking_uri=f"sqlite:///{root / 'mlflow.db'}", **settings)
    start = time.perf_counter()
    results = start_sweep(s, cfg)
    return results, round(time.perf_counter() - start, 1)


def rank(root: Path, trials: int, seed: int) -> dict:
    """Random search without early stopping or confirmation: every trial's full curves, every validator."""
    from lsdseg.sweep.trust import assess_all, last_checkpoint_regret

    results, wall = _sweep(root, "rank", "target_miou", searcher="random", scheduler="none", num_samples=trials,
                           confirm_top=0, sampler_seed=seed)
    return {"folder": str(results.folder), "trials": trials, "wall_seconds": wall,
            "validators": [asdict(t) for t in assess_all(results.trials)], "last_checkpoint_regret": last_checkpoint_regret(results.trials)}


def _target_scores(results, rank_: int, smoothing: int) -> dict[int, float]:
    """Seed -> mean target mIoU of the last `smoothing` evaluations, for one confirmed configuration."""
    candidate = next(c for c in results.candidates if c.rank == rank_)
    found = {}
    for t in results.trials:
        mine = (t.phase == "confirm" and t.confirm_rank == rank_) or (
            t.phase == "search" and candidate.from_search and candidate.number is not None and t.number == candidate.number)
        if mine and t.status == "completed" and t.history:
            found[t.seed] = statistics.fmean(v for _, v in t.history[-smoothing:])
    return found


def _compared(runs: dict) -> dict:
    """Each objective's confirmed winner against the defaults and the target_miou winner, on the same seeds."""
    from lsdseg.sweep.confirm import paired

    reference = runs.get("target_miou", {}).get("winner_target", {})
    for run in runs.values():
        versus = {"defaults": paired(run["winner_target"], run["defaults_target"]), "target_miou_winner": paired(run["winner_target"], reference)}
        run |= {"winner_mean": statistics.fmean(run["winner_target"].values()) if run["winner_target"] else None,
                "versus": {k: vars(v) if v else None for k, v in versus.items()}}
    return runs


def tune(root: Path, objectives: list[str], seed: int, keep) -> dict:
    """`keep(runs)` after every sweep: the two hours of a full run keep each objective as it is measured."""
    from lsdseg.sweep.confirm import DEFAULTS_RANK

    runs = {}
    for objective in objectives:
        results, wall = _sweep(root, f"tune-{objective}", objective, sampler_seed=seed)
        win, k = results.winner, results.state["settings"]["smoothing"]
        runs[objective] = {"folder": str(results.folder), "wall_seconds": wall, "winner": win.candidate.label if win else None,
                           "winner_target": _target_scores(results, win.candidate.rank, k) if win else {},
                           "defaults_target": _target_scores(results, DEFAULTS_RANK, k)}
        keep(_compared(runs))
    return runs


def merged(parts: list[dict]) -> dict:
    """The --tune parts of several earlier runs as one, compared again: a later file's objective replaces an
    earlier one's. Lets the objectives be measured in separate sittings and still be compared seed by seed."""
    runs: dict = {}
    for part in parts:
        for name, run in part.items():
            # JSON turned the seeds into strings; the comparison pairs them by seed
            runs[name] = run | {k: {int(s): v for s, v in run[k].items()} for k in ("winner_target", "defaults_target")}
    return _compared(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cost", action="store_true")
    parser.add_argument("--rank", action="store_true")
    parser.add_argument("--tune", action="store_true")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="earlier --tune results to compare as one")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=OBJECTIVES)
    parser.add_argument("--seed", type=int, default=0, help="sampler seed")
    parser.add_argument("--out", default="bench/results/validators")
    args = parser.parse_args()
    if not (args.cost or args.rank or args.tune or args.merge):
        parser.error("pick at least one of --cost, --rank, --tune, --merge")
    if args.merge and args.tune:
        parser.error("--merge compares earlier runs: run --tune on its own first")
    parts = []
    for name in args.merge or []:  # every file is read before anything is written
        try:
            parts.append(json.loads(Path(name).read_text())["tune"])
        except (OSError, ValueError, KeyError, TypeError):
            parser.error(f"{name} is not a results file with a --tune part: give the JSON files that --tune wrote")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    root = Path(args.out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    report: dict = {"benchmark": "validators"}
    path = root / f"{time.strftime('%Y%m%d-%H%M%S')}.json"

    def keep(part: str, value: dict) -> None:  # after every part: a long run keeps what it measured
        report[part] = value
        path.write_text(json.dumps(report, indent=2))

    if args.merge:
        report["merged_from"] = args.merge
        keep("tune", merged(parts))
    for part, run in (("cost", lambda: cost()), ("rank", lambda: rank(root, args.trials, args.seed)),
                      ("tune", lambda: tune(root, args.objectives, args.seed, lambda runs: keep("tune", runs)))):
        if getattr(args, part):
            keep(part, run())
    print(json.dumps(report, indent=2))
    if "cost" in report:
        c = report["cost"]
        print(f"\nevaluation, untrained F: {statistics.median(c['evaluate_s']):.2f} s target mIoU alone, "
              f"{statistics.median(c['validate_s']):.2f} s with every validator (x{c['ratio']:.2f})")
    if "rank" in report:
        print(f"\n{'validator':<12} {'Spearman':>8} {'Kendall':>8} {'regret/run':>10} {'regret/trials':>13}  over")
        for t in report["rank"]["validators"]:
            print(f"{t['name']:<12} {t['spearman']:8.2f} {t['kendall']:8.2f} {t['regret_within'] * 100:10.1f} "
                  f"{t['regret_across'] * 100:13.1f}  {t['evaluations']} evaluations, {t['runs']} runs")
        print(f"last checkpoint, no selection: regret/run {report['rank']['last_checkpoint_regret'] * 100:.1f}")
    if "tune" in report:
        print(f"\n{'objective':<12} {'winner':<16} {'target mIoU':>11}  {'vs defaults [95% CI]':<24} vs target_miou winner")
        for name, r in report["tune"].items():
            cells = [f"{v['mean'] * 100:+.1f} [{v['low'] * 100:+.1f}, {v['high'] * 100:+.1f}]" if v else "-" for v in r["versus"].values()]
            mean = "-" if r["winner_mean"] is None else f"{r['winner_mean'] * 100:.1f}"
            print(f"{name:<12} {str(r['winner']):<16} {mean:>11}  {cells[0]:<24} {cells[1]}")


if __name__ == "__main__":
    main()
