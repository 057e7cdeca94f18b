"""Selection protocols judged on the table of recorded runs (bench/runs_table.py): thousands of simulated
sweeps in seconds, instead of one 20-minute sweep per data point.

A simulated sweep draws its configurations at random from the pool (the default weights always in), and
plays the product's own allocation (lsdseg.sweep.race) and decision rule (lsdseg.sweep.verify) on the
recorded scores, two runs at a time as `lsdseg sweep` runs them. It may use seeds 0-4 of the table: each
sweep shuffles them, the first ones are its selection seeds (the first its search seed), the next ones its
verification seeds. The truth about a configuration is its mean score on seeds 5-7, which no protocol
sees. TPE's proposals are not in a fixed pool, so the search here is random search; what is judged is
what happens after the search.

Reported per protocol and budget (runs of 300 iterations):
- false claims: the share of sweeps that ship a configuration other than the defaults whose truth is not
  above the defaults' truth;
- the expected true gain of what is shipped (0 when the defaults are shipped);
- how often a configuration truly at least `--effect` points better than the defaults is shipped: over
  all sweeps, and over the sweeps whose draws held one.

    python bench/protocols.py [--sweeps 4000] [--budgets 15 60]

Writes bench/results/protocols.json.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runs_table import SEEDS, cells, read_table, score  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "protocols.json"
USABLE, TRUTH = (0, 1, 2, 3, 4), (5, 6, 7)


@dataclass(frozen=True)
class Protocol:
    name: str
    configs: int  # configurations searched, the defaults included (each one run on the search seed)
    selection_seeds: int  # seeds a configuration may race on, the search seed included
    verify_seeds: int  # 0: no verification (the old protocol: the best confirmed mean is shipped)
    race_runs: float  # the race's budget in runs; for the old protocol, the confirmation's top K
    alpha: float = 0.025
    margin: float = 0.0
    look: int = 300  # iterations of a search trial; below 300 a raced configuration's search run is continued to 300

    def budget(self) -> float:
        if self.verify_seeds == 0:
            return self.configs + (self.race_runs + 1) * (self.selection_seeds - 1)
        return self.configs * self.look / 300 + self.race_runs + 2 * self.verify_seeds


@dataclass
class Outcome:
    shipped: str
    runs: float
    verified: Optional[str]
    drawn: list[str]  # the configurations the sweep searched


LOOKS = (100, 150, 300)


def load() -> tuple[dict[int, dict[str, dict[int, float]]], dict[str, float], dict[str, float]]:
    """(look -> config -> seed -> score at that many iterations, config -> truth at 300, config -> standard
    error of the truth), for the configurations recorded on every seed."""
    found = cells(read_table(), 300)
    tables: dict[int, dict[str, dict[int, float]]] = {look: {} for look in LOOKS}
    for (name, seed), row in found.items():
        for look in LOOKS:
            tables[look].setdefault(name, {})[seed] = score(row, look) * 100
    tables = {look: {n: s for n, s in t.items() if set(s) >= set(SEEDS)} for look, t in tables.items()}
    table = tables[300]
    truth = {n: statistics.fmean(s[k] for k in TRUTH) for n, s in table.items()}
    se = {n: statistics.stdev(s[k] for k in TRUTH) / math.sqrt(len(TRUTH)) for n, s in table.items()}
    return tables, truth, se


def simulate(p: Protocol, tables: dict[int, dict[str, dict[int, float]]], rng: random.Random, slots: int = 2) -> Outcome:
    from lsdseg.sweep.race import Race
    from lsdseg.sweep.verify import decide

    table = tables[300]
    others = sorted(n for n in table if n != "defaults")
    names = ["defaults", *rng.sample(others, min(p.configs - 1, len(others)))]
    seeds = list(USABLE)
    rng.shuffle(seeds)
    select, verify = seeds[: p.selection_seeds], seeds[p.selection_seeds: p.selection_seeds + p.verify_seeds]
    search = {i: tables[p.look][n][select[0]] for i, n in enumerate(names)}
    if p.verify_seeds == 0:  # the protocol shipped up to f0f0fab: confirm the top K and the defaults, ship the best mean
        top = sorted(range(1, len(names)), key=lambda i: -search[i])[: p.race_runs]
        means = {i: statistics.fmean(table[names[i]][s] for s in select) for i in [0, *top]}
        return Outcome(names[max(means, key=means.get)], p.budget(), None, names)
    # a short first look is no 300-iteration score: the race continues a search run to 300 (the rest of its cost)
    short = p.look < 300
    race = Race(search, defaults=0, selection_seeds=select, verify_seeds=verify, race_runs=p.race_runs, comparable=not short, short=short,
                continuable=frozenset(search) if short else frozenset(), continued_cost=(300 - p.look) / 300)
    pending: list = []
    while True:
        while len(pending) < slots:
            run = race.next(pending)
            if run is None or run == "done":
                break
            pending.append(run)
        if not pending:
            break
        for run in pending:
            race.record(run, table[names[run.config]][run.seed])
        pending = []
    runs = len(names) * p.look / 300 + sum(race.price(r) if r.stage == "race" else 1.0 for r in race.started)
    if race.candidate == 0:
        return Outcome("defaults", runs, None, names)
    decision = decide(race.verified[race.candidate], race.verified[0], p.alpha, p.margin)
    return Outcome(names[race.candidate] if decision.ship_candidate else "defaults", runs, names[race.candidate], names)


def judge(p: Protocol, tables, truth, sweeps: int, effect: float, seed: int = 0) -> dict:
    rng = random.Random(seed)
    base = truth["defaults"]
    good = {n for n in truth if truth[n] - base >= effect}
    false, gain, found, with_good, found_given = 0, [], 0, 0, 0
    runs = []
    for _ in range(sweeps):
        outcome = simulate(p, tables, rng)
        drawn = set(outcome.drawn)
        shipped = outcome.shipped
        runs.append(outcome.runs)
        if shipped != "defaults" and truth[shipped] <= base:
            false += 1
        gain.append(truth[shipped] - base)
        hit = shipped in good
        found += hit
        if drawn & good:
            with_good += 1
            found_given += hit
    return {"protocol": asdict(p), "budget": p.budget(), "mean_runs": statistics.fmean(runs), "sweeps": sweeps,
            "false_claims": false / sweeps, "expected_gain": statistics.fmean(gain),
            "ships_good": found / sweeps, "sweeps_with_good": with_good / sweeps,
            "ships_good_given_drawn": found_given / with_good if with_good else None}


def protocols(budget: int, pool: int) -> list[Protocol]:
    """The old protocol (at its own budget, 14 runs), and race-then-verify shapes that spend at most `budget`
    runs on a pool of `pool` configurations besides the defaults."""
    shapes = [Protocol("f0f0fab: 8 configs, top 2 + defaults on 3 seeds, best mean shipped", 8, 3, 0, 2)] if budget <= 15 else []
    for alpha in (0.025, 0.05):
        for look in LOOKS:
            for verify in (3, 4):
                for select in (1, 2):
                    if select + verify > len(USABLE):
                        continue
                    for configs in range(3, pool + 2):
                        left = budget - configs * look / 300 - 2 * verify
                        if left < 0:
                            break
                        # beyond a few runs the race has nothing left to decide; with one selection seed and full looks
                        # it has nothing to do (a short look's race continues configurations to 300)
                        for race in sorted({min(left, r) for r in (0, 1, 2, 4, 8)}):
                            if select == 1 and look == 300 and race > 0:
                                continue
                            shapes.append(Protocol(f"look {look}, {configs} configs, {select} selection seeds, race {race:g}, "
                                                   f"verify {verify}, alpha {alpha:g}", configs, select, verify, race, alpha, look=look))
    return shapes


def best(results: list[dict], budget: int, ceiling: float = 0.05) -> Optional[dict]:
    """The protocol within `budget` that most often ships a truly better configuration, among those whose
    false claims stay at or below `ceiling`."""
    fit = [r for r in results if r["budget_limit"] == budget and r["false_claims"] <= ceiling and r["protocol"]["verify_seeds"]]
    return max(fit, key=lambda r: (r["ships_good"], r["expected_gain"]), default=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=2000)
    parser.add_argument("--budgets", type=int, nargs="+", default=[15, 20, 30, 45, 60])
    parser.add_argument("--effect", type=float, default=3.0, help="points of target mIoU that make a configuration 'truly better'")
    args = parser.parse_args()
    from lsdseg.runinfo import provenance

    tables, truth, se = load()
    table = tables[300]
    if "defaults" not in table:
        parser.error("the table has no complete row for the default weights: record it first (python bench/runs_table.py)")
    base = truth["defaults"]
    print(f"{len(table)} configurations on every seed; truth (mean of seeds 5-7) minus the defaults' {base:.1f}:")
    for n in sorted(truth, key=truth.get, reverse=True):
        print(f"  {n:<14} {truth[n] - base:+6.1f} (standard error {se[n]:.1f})")
    results = []
    for budget in args.budgets:
        for p in protocols(budget, len(table) - 1):
            results.append(judge(p, tables, truth, args.sweeps, args.effect) | {"budget_limit": budget})
        top = best(results, budget)
        if top:
            print(f"{budget:>3}: best {top['protocol']['name']}: ships a good one in {top['ships_good']:.0%}, "
                  f"false {top['false_claims']:.1%}, gain {top['expected_gain']:+.2f}", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"benchmark": "protocols", **provenance(), "effect": args.effect, "truth": truth, "truth_se": se,
                               "budgets": args.budgets, "results": results}, indent=2))


if __name__ == "__main__":
    main()
