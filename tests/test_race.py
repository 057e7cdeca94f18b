"""Racing and the decision rule, in process on synthetic score tables (no training)."""
from __future__ import annotations

import math

import pytest

from lsdseg.sweep.race import Race, Run
from lsdseg.sweep.verify import decide, look_alpha, paired, seeds_for_power

pytestmark = pytest.mark.unit

SELECT, VERIFY = [0, 1, 2], [1000, 1001, 1002]


def drive(race: Race, table: dict[int, dict[int, float]], slots: int = 2) -> list[list[Run]]:
    """Run a race to the end with `slots` runs at once, each taking the same time; the rounds it ran."""
    pending: list[Run] = []
    rounds = []
    while True:
        while len(pending) < slots:
            run = race.next(pending)
            if run is None or run == "done":
                break
            pending.append(run)
        if not pending:
            assert race.next(pending) == "done"
            return rounds
        rounds.append(list(pending))
        for run in pending:
            race.record(run, table[run.config][run.seed])
        pending = []


def test_a_configuration_behind_the_defaults_on_the_search_seed_never_races():
    race = Race({0: 0.20, 1: 0.15, 2: 0.25}, defaults=0, selection_seeds=SELECT, verify_seeds=VERIFY, race_runs=10)
    assert race.dropped == [1]
    assert race.challengers() == [2]


def test_a_challenger_earns_seeds_only_while_ahead_and_the_incumbent_gains_them_beside_it():
    # 1 leads on the search seed, then falls behind on seed 1: dropped after one more seed each
    table = {0: {0: 0.20, 1: 0.20, 2: 0.20}, 1: {0: 0.30, 1: 0.05, 2: 0.40}}
    race = Race({0: 0.20, 1: 0.30}, defaults=0, selection_seeds=SELECT, verify_seeds=VERIFY, race_runs=10)
    rounds = drive(race, table)
    assert rounds[0] == [Run(1, 1, "race"), Run(0, 1, "race")]  # the challenger and the incumbent, side by side
    assert race.dropped == [1] and race.candidate == 0
    assert len(rounds) == 1  # the defaults stayed and nobody is ahead of them: nothing to verify


def test_a_challenger_ahead_on_every_selection_seed_becomes_the_candidate_and_is_verified_alone():
    table = {0: {0: 0.20, 1: 0.20, 2: 0.20, 1000: 0.2, 1001: 0.22, 1002: 0.18},
             1: {0: 0.30, 1: 0.25, 2: 0.22, 1000: 0.3, 1001: 0.31, 1002: 0.29},
             2: {0: 0.28, 1: 0.26, 2: 0.30, 1000: 0.9, 1001: 0.9, 1002: 0.9}}
    race = Race({0: 0.20, 1: 0.30, 2: 0.28}, defaults=0, selection_seeds=SELECT, verify_seeds=VERIFY, race_runs=4)
    drive(race, table)
    # trial 1 races first (the best search score) and uses the race budget: trial 2 never gets a seed
    assert race.incumbent == race.candidate == 1
    assert [r for r in race.started if r.stage == "race"] == [Run(1, 1, "race"), Run(0, 1, "race"), Run(1, 2, "race"), Run(0, 2, "race")]
    verify = [r for r in race.started if r.stage == "verify"]
    assert sorted((r.config, r.seed) for r in verify) == [(c, s) for c in (0, 1) for s in VERIFY]
    assert set(race.verified[1]) == set(VERIFY)  # the figure comes from these runs only


def test_the_race_budget_is_never_exceeded_and_the_defaults_verification_fills_idle_slots():
    table = {c: {s: 0.1 * c + 0.01 * s for s in range(3)} | {s: 0.1 * c for s in VERIFY} for c in range(6)}
    race = Race({c: table[c][0] for c in range(6)}, defaults=0, selection_seeds=SELECT, verify_seeds=VERIFY, race_runs=3)
    rounds = drive(race, table, slots=2)
    assert sum(r.stage == "race" for r in race.started) == 3
    # one run left: not trial 5's seed 2 (the incumbent could not run it beside it) but trial 4's seed 1, which
    # the incumbent has; the other slot starts a defaults verification run
    assert rounds[1] == [Run(4, 1, "race"), Run(0, 1000, "verify")]
    # the defaults are still incumbent, so the challenger ahead on the most seeds is verified
    assert race.candidate == 5


def test_a_failed_run_loses_its_comparison():
    table = {0: {0: 0.2, 1: 0.2, 2: 0.2}, 1: {0: 0.3, 1: math.nan, 2: 0.3}}
    race = Race({0: 0.2, 1: 0.3}, defaults=0, selection_seeds=SELECT, verify_seeds=VERIFY, race_runs=10)
    drive(race, table)
    assert race.dropped == [1]


def test_paired_interval_and_the_decision_rule():
    defaults = {1: 0.10, 2: 0.20, 3: 0.15}
    better = {1: 0.20, 2: 0.31, 3: 0.24}  # +0.10, +0.11, +0.09
    p = paired(better, defaults, alpha=0.025)
    assert p.mean == pytest.approx(0.10) and p.n == 3 and p.low > 0
    assert p.low == pytest.approx(0.10 - 4.302653 * 0.01 / math.sqrt(3), abs=1e-6)  # t(0.975, 2)
    assert decide(better, defaults, 0.025, 0.0).ship_candidate
    noisy = {1: 0.30, 2: 0.15, 3: 0.20}  # +0.2, -0.05, +0.05: a positive mean, an interval that includes 0
    decision = decide(noisy, defaults, 0.025, 0.0)
    assert not decision.ship_candidate and decision.evidence.mean > 0 and "not above" in decision.reason
    assert not decide(better, defaults, 0.025, margin=0.10).ship_candidate  # the user's margin
    failed = decide({1: 0.5, 2: math.nan, 3: 0.5}, defaults, 0.025, 0.0)
    assert not failed.ship_candidate and "failed on verification seed 2" in failed.reason


def test_each_added_look_halves_the_level_so_all_looks_together_stay_below_twice_alpha():
    levels = [look_alpha(0.025, k) for k in range(1, 30)]
    assert levels[:3] == [0.025, 0.0125, 0.00625]
    assert sum(levels) < 0.05


def test_seeds_for_power_matches_the_noncentral_t_and_grows_with_the_spread():
    n = seeds_for_power(effect=3.0, sd=3.0, alpha=0.025)
    assert n == 10  # the textbook paired-t answer for d = 1 at one-sided 2.5 %, 80 % power
    assert seeds_for_power(3.0, 6.0, 0.025) > n
    assert seeds_for_power(3.0, math.nan, 0.025) is None


def test_defaults_that_no_search_trial_ran_race_on_the_search_seed_first():
    from lsdseg.sweep.race import DEFAULTS

    table = {DEFAULTS: {0: 0.2, 1: 0.2, 2: 0.2}, 1: {0: 0.3, 1: 0.3, 2: 0.3}}
    race = Race({1: 0.3}, defaults=DEFAULTS, selection_seeds=SELECT, verify_seeds=VERIFY, race_runs=10)
    rounds = drive(race, {**table, **{c: table[c] | {s: 0.25 for s in VERIFY} for c in table}})
    assert rounds[0][0] == Run(DEFAULTS, 0, "race")
    assert race.candidate == 1


def test_without_comparable_search_runs_every_seed_is_raced_from_scratch():
    """Population Based Training: a search trial is no plain run, so even the search seed is run again."""
    table = {0: {0: 0.2, 1: 0.2, 2: 0.2}, 1: {0: 0.1, 1: 0.1, 2: 0.1}}
    race = Race({0: 0.5, 1: 0.9}, defaults=0, selection_seeds=SELECT, verify_seeds=VERIFY, race_runs=10, comparable=False)
    rounds = drive(race, table)
    assert rounds[0] == [Run(1, 0, "race"), Run(0, 0, "race")]
    assert race.dropped == [1] and race.candidate == 0


def _simulate(truth: dict[int, float], noise: float, rng, select=(0, 1, 2), verify=(1000, 1001, 1002), race_runs=4, alpha=0.025):
    """One sweep on a synthetic problem: configuration c scores truth[c] + a seed effect shared by every
    configuration + its own noise; returns the configuration shipped."""
    seeds = [*select, *verify]
    shared = {s: rng.gauss(0, noise) for s in seeds}
    table = {c: {s: t + shared[s] + rng.gauss(0, noise) for s in seeds} for c, t in truth.items()}
    race = Race({c: table[c][select[0]] for c in truth}, defaults=0, selection_seeds=list(select), verify_seeds=list(verify),
                race_runs=race_runs)
    drive(race, table)
    if race.candidate == 0:
        return 0
    return race.candidate if decide(race.verified[race.candidate], race.verified[0], alpha, 0.0).ship_candidate else 0


def test_with_no_better_configuration_the_rule_rarely_ships_one():
    """Eight configurations no better than the defaults (two of them worse), noisy seeds: the race always
    finds a candidate that looks better on its seeds, yet held-out verification ships one in few sweeps."""
    import random

    rng = random.Random(0)
    truth = {0: 0.0, **{c: 0.0 for c in range(1, 7)}, 7: -0.02, 8: -0.05}
    shipped = [_simulate(truth, 0.03, rng) for _ in range(2000)]
    assert sum(s != 0 for s in shipped) / len(shipped) <= 0.035  # alpha 0.025 one-sided, and a little sampling slack


def test_a_clearly_better_configuration_is_found_and_shipped():
    import random

    rng = random.Random(1)
    truth = {0: 0.0, **{c: 0.0 for c in range(1, 7)}, 7: 0.10}
    shipped = [_simulate(truth, 0.02, rng) for _ in range(500)]
    assert sum(s == 7 for s in shipped) / len(shipped) > 0.8  # 3 held-out seeds: a t interval on 2 degrees of freedom


def test_the_defaults_run_on_the_search_seed_even_without_a_race_budget():
    """No search trial ran the defaults and the race has no runs to spend: their search-seed run is part of
    the search, and the challenger ahead of them there is verified."""
    from lsdseg.sweep.race import DEFAULTS

    table = {DEFAULTS: {0: 0.2, 1000: 0.2, 1001: 0.2}, 1: {0: 0.3, 1000: 0.3, 1001: 0.3}, 2: {0: 0.1}}
    race = Race({1: 0.3, 2: 0.1}, defaults=DEFAULTS, selection_seeds=[0], verify_seeds=[1000, 1001], race_runs=0)
    rounds = drive(race, table)
    assert rounds[0][0] == Run(DEFAULTS, 0, "race") and race.candidate == 1 and set(race.dropped) == {DEFAULTS, 2}


def _first_look(search: dict[int, float], race_runs: float) -> Race:
    """A race after search trials of half the length: each configuration's search trial continues on seed 0 at
    half a run's cost."""
    return Race(search, defaults=0, selection_seeds=[0], verify_seeds=[1000, 1001], race_runs=race_runs, comparable=False,
                short=True, continuable=frozenset(search), continued_cost=0.5)


def test_a_first_look_orders_the_race_and_the_full_length_decides():
    """Search scores at half length put trial 1 first, but continued to full length trial 2 is the one ahead of
    the defaults: the race spends half a run per continuation and verifies trial 2."""
    full = {0: {0: 0.20, 1000: 0.2, 1001: 0.2}, 1: {0: 0.15}, 2: {0: 0.30, 1000: 0.3, 1001: 0.3}, 3: {0: 0.1}}
    race = _first_look({0: 0.10, 1: 0.25, 2: 0.20, 3: 0.05}, race_runs=1.5)
    rounds = drive(race, full)
    assert rounds[0] == [Run(1, 0, "race"), Run(0, 0, "race")]  # the leader and the defaults, continued
    assert rounds[1][0] == Run(2, 0, "race")  # 1.5 runs: three continuations (the defaults' verification beside it)
    assert sum(race.price(r) for r in race.started if r.stage == "race") == pytest.approx(1.5)
    assert race.dropped == [1, 0] and race.candidate == 2


def test_a_first_look_with_no_race_budget_verifies_the_best_search_score_ahead_of_the_defaults():
    race = _first_look({0: 0.10, 1: 0.25, 2: 0.20}, race_runs=0)
    rounds = drive(race, {c: {1000: 0.2, 1001: 0.2} for c in (0, 1, 2)})
    assert race.candidate == 1 and {r.stage for rs in rounds for r in rs} == {"verify"}


def test_a_first_look_behind_the_defaults_is_never_verified():
    race = _first_look({0: 0.30, 1: 0.25}, race_runs=0)
    assert race.next([]) == "done" and race.candidate == 0


def test_a_continuation_prices_only_the_search_seed():
    race = _first_look({0: 0.1, 1: 0.2}, race_runs=4)
    assert race.price(Run(1, 0, "race")) == 0.5 and race.price(Run(1, 1, "race")) == 1.0 and race.price(Run(7, 0, "race")) == 1.0


def test_a_first_look_without_a_search_trial_of_the_defaults_verifies_the_best_search_score():
    """A space that excludes the default weights: no score of theirs at the first look, so the best one is verified."""
    from lsdseg.sweep.race import DEFAULTS

    race = Race({1: 0.2, 2: 0.3}, defaults=DEFAULTS, selection_seeds=[0], verify_seeds=[1000], race_runs=0, comparable=False,
                short=True, continuable=frozenset({1, 2}), continued_cost=0.5)
    assert race.next([]) == Run(2, 1000, "verify") and race.candidate == 2
