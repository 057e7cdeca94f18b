"""Which run comes next after a sweep's search: selection by racing on selection seeds, then verification
of one candidate against the default weights on held-out seeds.

Racing (after SMAC3's intensification; irace races the same way with a statistical test): the incumbent
starts as the default weights. The search's configurations challenge it in the order of their search
scores. A challenger earns its next selection seed only while it is ahead of the incumbent on the seeds
they share (the mean of the paired differences is above 0); it is dropped as soon as it is not. The
incumbent gains a seed whenever a challenger has caught up with all of its seeds, so the incumbent's
evidence grows as the sweep goes. A challenger still ahead once both have every selection seed becomes the
incumbent. No test decides here: racing only spends the selection budget where it can still matter.

When the race budget is spent (or no challenger is left), the incumbent is the sweep's one candidate,
fixed before any verification run exists; if the default weights are still incumbent, the challenger ahead
of them on the most seeds is (see `Race._choose`). Where search trials were shorter than race runs (a
first look), the race's first run of a configuration on the search seed continues its search trial to full
length, and a configuration never raced may still be the candidate by its search score. If the candidate is the default weights there is
nothing to verify.
Otherwise the candidate and the default weights are each trained on the verification seeds, which no
earlier run used, and `lsdseg.sweep.verify.decide` judges those runs alone.

Runs are proposed one at a time, as slots free up, so that several run at once (on a cluster each
(configuration, seed) is its own trial): a challenger's run and the incumbent's run on the same seed go
together. While the race waits for results and a slot is free, the default weights' verification runs
start early, if the candidate as things stand is not the defaults: they depend on nothing else.

Pure: no Ray, Optuna or MLflow (`lsdseg.sweep.phases` drives it through a Ray Tune searcher;
bench/protocols.py replays it on recorded runs).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Literal, Optional, Sequence

Stage = Literal["race", "verify"]


@dataclass(frozen=True)
class Run:
    config: int  # the configuration's search trial number (the defaults' too)
    seed: int
    stage: Stage


DEFAULTS = -1  # the default weights' key when no search trial ran them (e.g. a space that excludes their values)


@dataclass
class Race:
    """`search`: configuration -> its search trial's score, NaN where that trial did not complete; the order
    in which configurations challenge. With `comparable`, each search trial was a plain run on the search
    seed (the first selection seed), so its score counts as that seed's; under Population Based Training a
    search trial took other trials' weights, so every seed is raced from scratch. `defaults`: the default
    weights' key, in `search` where a search trial ran them."""

    search: dict[int, float]
    defaults: int
    selection_seeds: Sequence[int]  # the search seed first
    verify_seeds: Sequence[int]
    race_runs: float  # the race's budget: the most race-stage runs to start (in runs: see `price`)
    scores: dict[int, dict[int, float]] = field(default_factory=dict)  # selection scores: config -> seed -> score
    verified: dict[int, dict[int, float]] = field(default_factory=dict)  # verification scores
    incumbent: Optional[int] = None
    candidate: Optional[int] = None  # fixed when the selection ends
    dropped: list[int] = field(default_factory=list)  # in the order they were dropped
    started: list[Run] = field(default_factory=list)  # every run proposed, in order
    comparable: bool = True
    # the search trials trained a shorter length than race runs (one search seed, one length for all): their
    # scores order the challengers, and pick the candidate where no full-length comparison is ahead of the defaults
    short: bool = False
    # configurations whose race run on the search seed continues their search trial, and what it costs in runs
    continuable: frozenset[int] = frozenset()
    continued_cost: float = 1.0

    def __post_init__(self):
        self.incumbent = self.defaults if self.incumbent is None else self.incumbent
        for config, value in self.search.items() if self.comparable else ():
            self.scores.setdefault(config, {}).setdefault(self.selection_seeds[0], value)
        self._settle()  # a configuration behind the defaults on the search seed never races

    # --- what the runs say -------------------------------------------------------------------------------------------------
    def record(self, run: Run, score: float) -> None:
        """A finished run's score (NaN: it failed)."""
        table = self.scores if run.stage == "race" else self.verified
        table.setdefault(run.config, {})[run.seed] = score if math.isfinite(score) else math.nan
        if run.stage == "race":
            self._settle()

    def ahead(self, config: int) -> Optional[float]:
        """The mean paired difference config - incumbent over the seeds both have (a failed run counts as
        the worst score); None if they share none."""
        mine, theirs = self.scores.get(config, {}), self.scores.get(self.incumbent, {})
        shared = sorted(set(mine) & set(theirs))
        if not shared:
            return None
        return statistics.fmean(_diff(mine[s], theirs[s]) for s in shared)

    def _settle(self) -> None:
        """Drop challengers behind the incumbent; crown one that is ahead on every selection seed."""
        changed = True
        while changed:
            changed = False
            for config in self.challengers():
                lead = self.ahead(config)
                if lead is None:
                    continue
                if not lead > 0:
                    self.dropped.append(config)
                    changed = True
                elif self._complete(config) and self._complete(self.incumbent):
                    self.dropped.append(self.incumbent)  # retired: the new incumbent beat it on every seed
                    self.incumbent = config
                    changed = True

    def _complete(self, config: int) -> bool:
        return all(s in self.scores.get(config, {}) for s in self.selection_seeds)

    def challengers(self) -> list[int]:
        """Configurations still racing, best search score first."""
        alive = [c for c, v in self.search.items() if c != self.incumbent and c not in self.dropped and math.isfinite(v)]
        return sorted(alive, key=lambda c: (-self.search[c], c))

    # --- what to run next --------------------------------------------------------------------------------------------------
    def next(self, pending: Sequence[Run]) -> Optional[Run] | Literal["done"]:
        """The next run to start, given the runs started and not yet recorded; None: wait for results;
        "done": nothing more to run."""
        if self.candidate is None:
            run = self._race_run(pending)
            if run is not None:
                return self._start(run)
            if any(r.stage == "race" for r in pending):
                early = self._verify_run(self.defaults, pending) if self._choose() != self.defaults else None
                return self._start(early) if early is not None else None
            self.candidate = self._choose()
        if self.candidate == self.defaults:
            return "done" if not pending else None
        for config in (self.candidate, self.defaults):
            run = self._verify_run(config, pending)
            if run is not None:
                return self._start(run)
        return "done" if not pending else None

    def _start(self, run: Run) -> Run:
        self.started.append(run)
        return run

    def _has(self, config: int, seed: int, pending: Sequence[Run], stage: Stage = "race") -> bool:
        table = self.scores if stage == "race" else self.verified
        return seed in table.get(config, {}) or Run(config, seed, stage) in pending

    def _race_run(self, pending: Sequence[Run]) -> Optional[Run]:
        first = Run(self.defaults, self.selection_seeds[0], "race")
        if self.comparable and self.search and not self._has(self.defaults, first.seed, pending):
            return first  # the defaults on the search seed, where no search trial ran them: every comparison needs it
        left = self.race_runs - sum(self.price(r) for r in self.started if r.stage == "race")
        if left <= 1e-9:
            return None
        incumbent = self.incumbent
        for config in self.challengers():
            waiting = [r.seed for r in pending if r.config == config and r.stage == "race"]
            if waiting:  # running: the incumbent runs the same seed beside it
                if not self._has(incumbent, waiting[0], pending):
                    return Run(incumbent, waiting[0], "race")
                continue
            mine, theirs = set(self.scores.get(config, {})), set(self.scores.get(incumbent, {}))
            behind = [s for s in sorted(mine - theirs) if not self._has(incumbent, s, pending)]
            if behind and self.price(Run(incumbent, behind[0], "race")) <= left + 1e-9:
                # the incumbent lacks a seed the challenger has (e.g. defaults no search trial ran)
                return Run(incumbent, behind[0], "race")
            if not mine <= theirs:  # the incumbent's run on one of its seeds is not in yet: compare first
                continue
            seed = next((s for s in self.selection_seeds if s not in mine), None)
            # ahead on every shared seed (else it was dropped): it earns the next one, if the budget also
            # holds the incumbent's run on it (a challenger's run alone compares with nothing)
            if seed is None:
                continue
            run, partner = Run(config, seed, "race"), Run(incumbent, seed, "race")
            if self.price(run) + (0 if seed in theirs else self.price(partner)) <= left + 1e-9:
                return run
        return None

    def price(self, run: Run) -> float:
        """What a race run costs, in runs."""
        if self.comparable and run == Run(self.defaults, self.selection_seeds[0], "race"):
            return 0.0  # part of the search: the search seed's run of the defaults
        if run.config in self.continuable and run.seed == self.selection_seeds[0]:
            return self.continued_cost
        return 1.0

    def _choose(self) -> int:
        """The candidate when the selection ends: the incumbent; but where the budget ran out with the default
        weights still incumbent, the challenger ahead of them on the most seeds (then by the larger lead):
        verifying it is the sweep's one chance to ship something better."""
        if self.incumbent != self.defaults:
            return self.incumbent
        ahead = [(len(set(self.scores.get(c, {})) & set(self.scores.get(self.defaults, {}))), self.ahead(c), c) for c in self.challengers()]
        ahead = [a for a in ahead if a[1] is not None and a[1] > 0]
        if ahead:
            return max(ahead)[2]
        if self.short:  # never raced at full length: the shorter look is all there is (the defaults' too, if they had one)
            raced, base = set(self.scores), self.search.get(self.defaults, -math.inf)
            early = [c for c in self.challengers() if c not in raced and self.search[c] > base]
            return min(early, key=lambda c: (-self.search[c], c)) if early else self.defaults
        return self.defaults

    def _verify_run(self, config: int, pending: Sequence[Run]) -> Optional[Run]:
        seed = next((s for s in self.verify_seeds if not self._has(config, s, pending, "verify")), None)
        return None if seed is None else Run(config, seed, "verify")


def _diff(a: float, b: float) -> float:
    """a - b, where a failed run (NaN) is worse than any score and two failed runs tie."""
    if math.isnan(a) or math.isnan(b):
        return 0.0 if math.isnan(a) and math.isnan(b) else (-math.inf if math.isnan(a) else math.inf)
    return a - b
