"""The early-stopping strategies of a sweep, and an offline replay of their rule on finished curves.

A sweep stops weak trials early to spend its budget on promising ones; the risk is stopping a slow starter
that would have won. `replay` answers, after the fact, whether a strategy would have stopped a given trial,
so the leaderboard and the report can say how much the chosen strategy is to be trusted (`winner_verdict`).

The replay feeds the curves to Ray's own ASHAScheduler, through the public scheduler interface Tune's
controller calls, so that its answer is Ray's answer for the same sequence of results, in any Ray release.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Literal, Mapping, Optional, Sequence, TypeVar, get_args

import numpy as np
from optuna.distributions import FloatDistribution
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining, TrialScheduler

from lsdseg.trainables.lsdseg_trainable import MEMBER

Strategy = Literal["asha", "hyperband", "asha_patient", "pbt", "none"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)

K = TypeVar("K", bound=Hashable)
Curve = Sequence[tuple[int, float]]  # (step, metric value) per evaluation, steps increasing


@dataclass(frozen=True)
class StopVerdict:
    """What a strategy would have done to one trial."""

    stopped_at: Optional[int]  # the step at which the most aggressive bracket that stops it does so; None: never
    probability: float  # the share of brackets, weighted as Ray assigns trials to them, that stop it


@dataclass(frozen=True)
class _Rule:
    brackets: int  # ASHA brackets; 0: no early stopping at all
    grace_factor: int  # the grace period is this multiple of the sweep's


_RULES: dict[Strategy, _Rule] = {
    "asha": _Rule(brackets=1, grace_factor=1),
    "hyperband": _Rule(brackets=3, grace_factor=1),
    "asha_patient": _Rule(brackets=1, grace_factor=2),
    "pbt": _Rule(brackets=0, grace_factor=1),  # PBT stops no trial
    "none": _Rule(brackets=0, grace_factor=1),
}

_NAMES: dict[Strategy, str] = {
    "asha": "ASHA",
    "hyperband": "Asynchronous HyperBand (3 brackets)",
    "asha_patient": "ASHA with a doubled grace period",
    "pbt": "Population Based Training (it stops no trial)",
    "none": "No early stopping",
}


def _rule(strategy: Strategy) -> _Rule:
    if strategy not in _RULES:
        raise ValueError(f"unknown early-stopping strategy {strategy!r}: pick one of {', '.join(STRATEGIES)}")
    return _RULES[strategy]


def _grace(rule: _Rule, grace_period: int, max_t: int) -> int:
    """Ray requires grace <= max_t; a grace past the end of training simply never stops anything."""
    return min(rule.grace_factor * grace_period, max_t)


@dataclass(frozen=True)
class _InRange:
    """PBT's explore step multiplies a value by 0.8 or 1.2 without looking at the range: put it back inside,
    so a perturbed trial never trains with a value the search space (and the config's checks) excludes."""

    ranges: dict[str, tuple[float, float]]

    def __call__(self, config: dict) -> dict:
        return {**config, MEMBER: {**config[MEMBER], **{k: min(max(config[MEMBER][k], low), high)
                                                        for k, (low, high) in self.ranges.items()}}}


class _PopulationBasedTraining(PopulationBasedTraining):
    """Ray's PBT, except at a trial's last evaluation: it has finished, and an exploit then would hand it
    another trial's checkpoint with nothing left to train (its result would be the other trial's)."""

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get("step", 0) >= result.get("iterations", float("inf")):
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)


def _population_based(metric: str, mode: str, interval: int, mutations: Mapping[str, FloatDistribution]) -> PopulationBasedTraining:
    if not mutations:
        raise ValueError("pbt perturbs the space's continuous values, and this space has none that every trial samples")
    domains = {k: tune.loguniform(d.low, d.high) if d.log else tune.uniform(d.low, d.high) for k, d in mutations.items()}
    # Synchronous: the population is ranked when every member has reached the same step. Asynchronous PBT
    # ranks a trial's score against others' last scores, taken at other steps (mIoU rises with training, so
    # that favours whoever reported last), and whether anyone exploits then depends on the order results arrive.
    # The runner already demands the whole population at once, so the barrier costs the spread of one interval.
    return _PopulationBasedTraining(time_attr="step", metric=metric, mode=mode, perturbation_interval=interval, synch=True,
                                    hyperparam_mutations={MEMBER: domains}, quantile_fraction=0.25, resample_probability=0.25,
                                    custom_explore_fn=_InRange({k: (d.low, d.high) for k, d in mutations.items()}))


def make_scheduler(strategy: Strategy, *, metric: str, mode: str, max_t: int, grace_period: int,
                   reduction_factor: float, pbt_interval: int = 0,
                   mutations: Mapping[str, FloatDistribution] | None = None) -> TrialScheduler:
    """The Ray Tune scheduler of `strategy`, on the trials' `step`.

    - "asha": asynchronous successive halving (Li et al., "A System for Massively Parallel Hyperparameter
      Tuning", MLSys 2020) with one bracket: at each rung (grace x rf^k iterations) a trial below the top
      1/rf of those that reached the rung before it is stopped.
    - "hyperband": asynchronous HyperBand (Li et al., "Hyperband: A Novel Bandit-Based Approach to
      Hyperparameter Optimization", JMLR 2018, run asynchronously as in the MLSys 2020 paper): 3 brackets,
      bracket s starting its rungs at grace x rf^s, each trial drawn into one at random. The later brackets
      stop less and later, the last one often only at max_t, i.e. never early: a hedge against slow starters.
    - "asha_patient": ASHA with a grace period twice as long, for curves that start slowly.
    - "pbt": synchronous Population Based Training (Jaderberg et al. 2017): every `pbt_interval` iterations,
      once the whole population has reached that step, each trial in the bottom quarter continues from the
      checkpoint of one in the top quarter, with `mutations` (the space's continuous values) perturbed.
      Needs the population running at once.
    - "none": every trial runs to the end.
    """
    if strategy == "pbt":
        return _population_based(metric, mode, pbt_interval, mutations or {})
    rule = _rule(strategy)
    if rule.brackets == 0:
        return FIFOScheduler()
    return ASHAScheduler(time_attr="step", metric=metric, mode=mode, max_t=max_t,
                         grace_period=_grace(rule, grace_period, max_t), reduction_factor=reduction_factor,
                         brackets=rule.brackets)


def _rung_count(grace: float, max_t: int, rf: float) -> int:
    """How many rungs an ASHA bracket starting at `grace` has: one per power of rf from grace up to max_t."""
    return int(np.log(max_t / grace) / np.log(rf) + 1)


def _weights(counts: Sequence[int]) -> list[float]:
    """Ray's chance of drawing a trial into each bracket of asynchronous HyperBand: a softmax over the
    brackets' rung counts (AsyncHyperBandScheduler, as documented in its source)."""
    sizes = np.array(counts)
    probs = np.e ** (sizes - sizes.max())
    return (probs / probs.sum()).tolist()


def _replay_bracket(curves: Mapping[K, Curve], scheduler: TrialScheduler, max_t: int) -> dict[K, Optional[int]]:
    """Feed the curves through a real Ray scheduler, a trial at a time, calling it as Tune's controller does:
    on_trial_add, on_trial_result per result until it says STOP, on_trial_complete with the last result."""
    stops: dict[K, Optional[int]] = {}
    for key, curve in curves.items():
        trial = Trial("__replay", stub=True)
        scheduler.on_trial_add(None, trial)
        stops[key] = None
        last: Optional[dict] = None
        for step, value in curve:
            last = {"step": step, "value": value}
            if scheduler.on_trial_result(None, trial, last) == TrialScheduler.STOP:
                stops[key] = step if step < max_t else None  # a stop at max_t is the end of training, not early
                break
        if last is not None:
            scheduler.on_trial_complete(None, trial, last)
    return stops


def _replay_brackets(strategy: Strategy, curves: Mapping[K, Curve], *, max_t: int, grace_period: int,
                     reduction_factor: float, mode: str) -> tuple[list[float], list[dict[K, Optional[int]]]]:
    """(weight, stop step per trial) of each bracket of `strategy`, each replayed with every trial in it.
    Bracket s of Ray's asynchronous HyperBand is ASHA with one bracket whose grace period is grace x rf^s,
    so each bracket is replayed on a one-bracket ASHAScheduler of Ray's own."""
    rule = _rule(strategy)
    grace = _grace(rule, grace_period, max_t)
    graces = [grace * reduction_factor ** s for s in range(rule.brackets)]
    stops = [_replay_bracket(curves, ASHAScheduler(time_attr="step", metric="value", mode=mode, max_t=max_t, grace_period=g,
                                                   reduction_factor=reduction_factor, brackets=1), max_t) for g in graces]
    return (_weights([_rung_count(g, max_t, reduction_factor) for g in graces]) if graces else []), stops


def replay(strategy: Strategy, curves: Mapping[K, Curve], *, max_t: int, grace_period: int,
           reduction_factor: float, mode: str = "max") -> dict[K, StopVerdict]:
    """For each trial, whether and when `strategy` would have stopped it, given the full curves of
    completed trials in the order they started.

    The rule is Ray's own (its scheduler decides); the order is not: trials ran concurrently and
    interleaved their results, here each trial's curve is fed whole before the next one starts. A
    trial stopped in the replay reports nothing further, so its later values never raise a later rung's
    cutoff, as in a real run.

    With several brackets Ray draws each trial's bracket at random; each bracket is replayed with every
    trial in it, and the verdict weighs the brackets that stop a trial by Ray's chance of drawing them.
    """
    weights, stops = _replay_brackets(strategy, curves, max_t=max_t, grace_period=grace_period,
                                      reduction_factor=reduction_factor, mode=mode)
    return {key: _verdict(weights, [s[key] for s in stops]) for key in curves}


def _verdict(weights: list[float], stops: list[Optional[int]]) -> StopVerdict:
    """Brackets are ordered most aggressive first, so the first stop found is that bracket's."""
    stopped_at = next((s for s in stops if s is not None), None)
    return StopVerdict(stopped_at, sum(w for w, s in zip(weights, stops, strict=True) if s is not None))


def winner_verdict(strategy: Strategy, curves: Mapping[K, Curve], winner_key: K, *, max_t: int,
                   grace_period: int, reduction_factor: float, mode: str = "max") -> str:
    """One sentence on whether `strategy` would have stopped the sweep's winner: the leaderboard's and the
    report's warning that a strategy may cut the slow starters a sweep is looking for."""
    weights, stops = _replay_brackets(strategy, curves, max_t=max_t, grace_period=grace_period,
                                      reduction_factor=reduction_factor, mode=mode)
    winner = f"the winner (trial {winner_key})"
    if not stops:
        return f"{_NAMES[strategy]}: none of the {len(curves)} completed trials would have been stopped, {winner} included"
    head = f"{_NAMES[strategy]} replayed on the full curves of the {len(curves)} completed trials"
    verdict = _verdict(weights, [s[winner_key] for s in stops])
    if verdict.stopped_at is None:
        return f"{head} would not have stopped {winner}"
    if len(stops) == 1:
        return f"{head} would have stopped {winner} at iteration {verdict.stopped_at}"
    stopping = sum(s[winner_key] is not None for s in stops)
    return (f"{head} would have stopped {winner} in {stopping} of {len(stops)} brackets "
            f"(probability {verdict.probability:.2f})")
