"""Label-free validators on the built-in benchmark: what each costs, and how well each tracks target mIoU
over the table of recorded runs (bench/runs_table.py: a pool of configurations, 8 seeds each, every
validator at every evaluation).

    python bench/validators.py --cost     # one evaluation with and without the validators, side by side
    python bench/validators.py --table    # correlations, regrets and stability from the recorded runs

--table reports, per validator:
- per run: each run's smoothed validator (mean of its last 3 evaluations, turned so that higher is better)
  against its smoothed target mIoU, Spearman's rho with a bootstrap 95 % interval over runs;
- per configuration: the mean over its 8 seeds of each, Spearman's rho (what a sweep would rank by, if it
  could afford 8 seeds);
- per evaluation: every evaluation of every run (progress, checkpoints and configurations mixed);
- regret of choosing a configuration by the validator measured on one seed, among 8 drawn at random from the
  pool (truth: the mean target mIoU on seeds 5-7), beside the regret of a random pick and of target mIoU
  itself on that seed; 2,000 draws;
- regret within a run (checkpoint selection), beside the last checkpoint's;
- stability: the median and largest ratio between consecutive evaluations of one run.
Writes bench/results/validators.json.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runs_table import SEEDS, SMOOTHING, cells, read_table  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "validators.json"
TRUTH = (5, 6, 7)


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


def _oriented(name: str, value: float) -> float:
    from lsdseg.objectives import oriented

    return oriented(name, value)


def _spearman(x: list[float], y: list[float]) -> float:
    from scipy import stats

    return float(stats.spearmanr(x, y).statistic) if len(set(x)) > 1 and len(set(y)) > 1 else math.nan


def _bootstrap(x: list[float], y: list[float], draws: int = 2000) -> tuple[float, float]:
    rng = random.Random(0)
    found = [_spearman([x[i] for i in pick], [y[i] for i in pick]) for pick in
             ([rng.randrange(len(x)) for _ in x] for _ in range(draws))]
    found = sorted(v for v in found if not math.isnan(v))
    return found[int(0.025 * len(found))], found[int(0.975 * len(found)) - 1]


def table(draws: int = 2000, pick: int = 8) -> dict:
    from lsdseg.objectives import VALIDATORS

    rows = cells(read_table(), 300)
    configs = sorted({c for c, _ in rows if all((c, s) in rows for s in SEEDS)})
    if len(configs) < 4:
        raise SystemExit(f"the table holds only {len(configs)} configurations on every seed: record more (python bench/runs_table.py)")
    runs = [rows[(c, s)] for c in configs for s in SEEDS]

    def smooth(row: dict, key: str) -> float:
        evals = [e for e in row["evals"] if e["step"] <= 300][-SMOOTHING:]
        return statistics.fmean(e["miou"] if key == "miou" else _oriented(key, e["validators"][key]) for e in evals)

    truth = {c: statistics.fmean(smooth(rows[(c, s)], "miou") for s in TRUTH) for c in configs}
    rng = random.Random(0)
    picks = [(rng.sample(configs, min(pick, len(configs))), rng.choice([s for s in SEEDS if s not in TRUTH])) for _ in range(draws)]
    out = {"configurations": len(configs), "runs": len(runs), "draws": draws, "pick_from": pick}

    def regret(key: str) -> float:
        lost = []
        for drawn, seed in picks:
            chosen = max(drawn, key=lambda c: smooth(rows[(c, seed)], key))
            lost.append(max(truth[c] for c in drawn) - truth[chosen])
        return statistics.fmean(lost)

    out["regret_random"] = statistics.fmean(max(truth[c] for c in d) - statistics.fmean(truth[c] for c in d) for d, _ in picks)
    out["regret_target_miou_one_seed"] = regret("miou")
    last = [max(e["miou"] for e in r["evals"] if e["step"] <= 300) - [e for e in r["evals"] if e["step"] <= 300][-1]["miou"] for r in runs]
    out["regret_within_last_checkpoint"] = statistics.fmean(last)
    out["validators"] = {}
    for name in VALIDATORS:
        x, y = [smooth(r, name) for r in runs], [smooth(r, "miou") for r in runs]
        low, high = _bootstrap(x, y)
        per_config = _spearman([statistics.fmean(smooth(rows[(c, s)], name) for s in SEEDS) for c in configs],
                               [statistics.fmean(smooth(rows[(c, s)], "miou") for s in SEEDS) for c in configs])
        flat = [(_oriented(name, e["validators"][name]), e["miou"]) for r in runs for e in r["evals"] if e["step"] <= 300]
        within = [max(e["miou"] for e in ev) - max(ev, key=lambda e: _oriented(name, e["validators"][name]))["miou"]
                  for ev in ([e for e in r["evals"] if e["step"] <= 300] for r in runs)]
        ratios = [max(abs(a) / abs(b), abs(b) / abs(a)) for r in runs
                  for a, b in zip([e["validators"][name] for e in r["evals"]],
                                  [e["validators"][name] for e in r["evals"]][1:], strict=False) if a and b]
        out["validators"][name] = {"run_spearman": _spearman(x, y), "run_low": low, "run_high": high, "config_spearman": per_config,
                                   "evaluation_spearman": _spearman(*map(list, zip(*flat, strict=False))), "regret_across": regret(name),
                                   "regret_within": statistics.fmean(within), "step_ratio_median": statistics.median(ratios),
                                   "step_ratio_max": max(ratios)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cost", action="store_true")
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    if not (args.cost or args.table):
        parser.error("pick at least one of --cost, --table")
    from lsdseg.runinfo import provenance

    report = json.loads(OUT.read_text()) if OUT.is_file() else {"benchmark": "validators"}
    if args.cost:
        report["cost"] = cost() | provenance(1)
    if args.table:
        report["table"] = table() | provenance()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    if args.cost:
        c = report["cost"]
        print(f"evaluation, untrained F: {statistics.median(c['evaluate_s']):.2f} s target mIoU alone, "
              f"{statistics.median(c['validate_s']):.2f} s with every validator (x{c['ratio']:.2f})")
    if args.table:
        t = report["table"]
        print(f"{t['configurations']} configurations x {len(SEEDS)} seeds; choosing 1 of {t['pick_from']} on one seed, "
              "regret in mIoU points: "
              f"random {t['regret_random'] * 100:.1f}, target mIoU itself {t['regret_target_miou_one_seed'] * 100:.1f}")
        print(f"{'validator':<12} {'per run [95 %]':<22} {'per config':>10} {'per eval':>8} {'regret':>7} {'within':>7} {'step x':>7}")
        for name, v in t["validators"].items():
            print(f"{name:<12} {v['run_spearman']:+.2f} [{v['run_low']:+.2f}, {v['run_high']:+.2f}]     {v['config_spearman']:+10.2f} "
                  f"{v['evaluation_spearman']:+8.2f} {v['regret_across'] * 100:7.1f} {v['regret_within'] * 100:7.1f} "
                  f"{v['step_ratio_median']:7.2f}")


if __name__ == "__main__":
    main()
