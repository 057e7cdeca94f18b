"""Confirmation on fresh seeds: which configurations to retrain, and what their seeds say.

The best of K noisy single-seed trials is biased upwards (the winner's curse): on the built-in benchmark
a configuration one lucky seed put on top scored 40.3, 20.5 and 13.8 on three seeds. So after the search,
the top-K configurations and the default weights are retrained on N fresh training seeds, every
configuration on the same seeds, and the winner is declared from those seeds: by the mean, or, with
`select="lower"`, by mean minus standard deviation, which penalises a configuration that collapses on
some seeds. Each is compared to the default weights seed by seed (paired), with a 95 % t interval.

Under Population Based Training a search trial is not a run of one configuration (it took other trials'
weights on the way), so a candidate is the trial's schedule (its first values and their `changes`),
replayed from scratch on every seed, the search's own included.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Literal, Optional, Sequence

from scipy import stats

from lsdseg.sweep.record import TrialRecord, ranked

Select = Literal["mean", "lower"]
RULES: dict[Select, str] = {"mean": "best mean", "lower": "best mean minus std"}  # as the leaderboard names them
DEFAULTS_RANK = 0  # the default weights; the search's best configurations are ranks 1..K


@dataclass(frozen=True)
class Candidate:
    """A configuration to confirm: rank 0 is the default weights, 1..K the search's best."""

    rank: int
    number: Optional[int]  # its search trial's Optuna number (None: the defaults were not a search trial)
    params: dict[str, Any]
    changes: Sequence[tuple[int, dict[str, Any]]] = ()  # a PBT schedule's later (step, values)
    from_search: bool = True  # whether its search trial is a plain run of it, one seed already answered

    @property
    def label(self) -> str:
        return "default weights" if self.rank == DEFAULTS_RANK else f"trial {self.number}"


@dataclass(frozen=True)
class ConfirmRun:
    """One confirmation run: a candidate's configuration on one training seed."""

    rank: int
    number: Optional[int]
    seed: int
    params: dict[str, Any]
    changes: Sequence[tuple[int, dict[str, Any]]] = ()


@dataclass(frozen=True)
class Paired:
    """Mean of the per-seed differences to the default weights, with its 95 % t interval."""

    mean: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class Confirmed:
    candidate: Candidate
    scores: dict[int, float]  # seed -> the run's final smoothed score (NaN: the run did not complete)
    versus_defaults: Optional[Paired]

    @property
    def complete(self) -> bool:
        return bool(self.scores) and not any(math.isnan(v) for v in self.scores.values())

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores.values()) if self.complete else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.scores.values()) if self.complete and len(self.scores) > 1 else math.nan

    @property
    def worst(self) -> float:
        return min(self.scores.values()) if self.complete else math.nan

    def criterion(self, select: Select) -> float:
        if not self.complete:
            return -math.inf
        return self.mean if select == "mean" else self.mean - (0.0 if math.isnan(self.std) else self.std)


def seeds_for(base_seed: int, fresh: int) -> list[int]:
    """The search's own training seed and `fresh` new ones: every candidate runs on all of them."""
    return [base_seed + i for i in range(fresh + 1)]


def candidates(search: list[TrialRecord], defaults: Optional[dict[str, Any]], top: int,
               schedules: Optional[dict[int, list]] = None) -> list[Candidate]:
    """The default weights (rank 0) and the `top` best completed search configurations (ranks 1..top).
    With `schedules` (PBT: Optuna number -> the trial's [(step, values), ...]) each is that schedule, and no
    search trial stands for any candidate's run."""
    plain = schedules is None
    default_trial = next((t for t in search if plain and defaults is not None and t.params == defaults), None)
    chosen = [Candidate(DEFAULTS_RANK, default_trial.number if default_trial else None, dict(defaults), from_search=plain)] \
        if defaults is not None else []
    seen: list = [(defaults, [])] if defaults is not None else []
    for t in ranked([t for t in search if t.status == "completed" and t.phase == "search"]):
        if len(chosen) - (defaults is not None) >= top:
            break
        (_, params), *changes = [(0, t.params)] if plain else schedules[t.number]
        if (params, changes) not in seen:  # a configuration TPE proposed twice is confirmed once
            seen.append((params, changes))
            chosen.append(Candidate(len(chosen) + (defaults is None), t.number, dict(params), changes, plain))
    return chosen


def runs_needed(chosen: list[Candidate], search: list[TrialRecord], seeds: list[int]) -> list[ConfirmRun]:
    """Every (candidate, seed) not already answered by a completed search trial of that configuration."""
    done = {(t.number, t.seed) for t in search if t.phase == "search" and t.status == "completed"}
    return [ConfirmRun(c.rank, c.number, s, c.params, c.changes) for c in chosen for s in seeds
            if not (c.from_search and (c.number, s) in done)]


def paired(a: dict[int, float], b: dict[int, float]) -> Optional[Paired]:
    common = sorted(set(a) & set(b))
    diffs = [a[s] - b[s] for s in common if not (math.isnan(a[s]) or math.isnan(b[s]))]
    if len(diffs) < len(common) or len(diffs) < 2:
        return None
    mean, sem = statistics.fmean(diffs), statistics.stdev(diffs) / math.sqrt(len(diffs))
    half = float(stats.t.ppf(0.975, len(diffs) - 1)) * sem
    return Paired(mean, mean - half, mean + half, len(diffs))


def summarise(chosen: list[Candidate], trials: list[TrialRecord], seeds: list[int]) -> list[Confirmed]:
    """Each candidate's score on every seed (from its search trial or its confirmation runs), in `chosen`'s order."""
    by_rank = {c.rank: c for c in chosen}
    scores: dict[int, dict[int, float]] = {c.rank: {} for c in chosen}
    for t in trials:
        value = t.score if t.status == "completed" else math.nan
        if t.phase == "confirm" and t.confirm_rank in by_rank:
            scores[t.confirm_rank][t.seed] = value
        elif t.phase == "search":
            for c in chosen:
                if c.from_search and c.number is not None and c.number == t.number and t.seed in seeds:
                    scores[c.rank].setdefault(t.seed, value)
    for rank in scores:
        for s in seeds:
            scores[rank].setdefault(s, math.nan)
    base = scores.get(DEFAULTS_RANK)
    return [Confirmed(c, scores[c.rank], paired(scores[c.rank], base) if base and c.rank != DEFAULTS_RANK else None) for c in chosen]


def winner(confirmed: list[Confirmed], select: Select) -> Optional[Confirmed]:
    complete = [c for c in confirmed if c.complete]
    return max(complete, key=lambda c: c.criterion(select)) if complete else None


def other_rule(confirmed: list[Confirmed], select: Select) -> Optional[tuple[Select, Confirmed]]:
    """The winner the other rule would declare from the same runs, where it differs. On the built-in
    benchmark the two rules disagreed in every sweep whose mean-winner was a searched configuration, and
    neither was reliably better on fresh seeds (README), so the leaderboard shows both."""
    other: Select = "lower" if select == "mean" else "mean"
    mine, theirs = winner(confirmed, select), winner(confirmed, other)
    if mine is None or theirs is None or theirs.candidate.rank == mine.candidate.rank:
        return None
    return other, theirs
