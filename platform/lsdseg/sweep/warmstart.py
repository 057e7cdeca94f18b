"""Warm start: a new study learns from earlier sweeps of the same space.

Their finished trials (completed and pruned, with values and intermediate values) are copied into the new
study with `study.add_trials`, and each one's candidate is proposed first. Ray's OptunaSearch cannot
take earlier results for a define-by-run space (`evaluated_rewards`), so this goes through the study.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from lsdseg.sweep.errors import SweepError
from lsdseg.sweep.layout import find_sweep

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class WarmStart:
    trials: list[FrozenTrial]  # to add to the new study
    winners: list[dict[str, Any]]  # to evaluate first


def inside(dist: BaseDistribution, value: Any) -> bool:
    """Whether `value` is a value `dist` could have suggested."""
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    return value is not None and dist.low <= value <= dist.high


def _fits(trial: FrozenTrial, space: dict[str, BaseDistribution]) -> str:
    """'' if every value of `trial` is a value of `space`, else what does not fit."""
    for name, value in trial.params.items():
        if name not in space:
            return f"{name} is not searched here"
        if type(trial.distributions[name]) is not type(space[name]) or not inside(space[name], value):
            return f"{name}={value!r} lies outside {space[name]}"
    return ""


def load_warm_start(sweeps: tuple[str, ...], space: dict[str, BaseDistribution]) -> WarmStart:
    """Every finished trial of `sweeps` (folders or names); a trial the space cannot hold is a one-line error."""
    trials, winners = [], []
    for ref in sweeps:
        layout = find_sweep(ref)
        settings = json.loads(layout.state.read_text())["settings"]
        study = optuna.load_study(study_name=settings["name"], storage=layout.study_storage(settings.get("study_uri")))
        for trial in study.get_trials(deepcopy=False, states=FINISHED):
            problem = _fits(trial, space)
            if problem:
                raise SweepError(f"--warm-start {ref}: trial {trial.number} does not fit this search space ({problem}): "
                                 "warm-start from a sweep of the same space, or drop --warm-start")
            trials.append(trial)
        if layout.best.is_file():  # its verified candidate (a folder from before verification: its winner)
            best = json.loads(layout.best.read_text())
            chosen = best["candidate"]["params"] if best.get("candidate") else None if "schema" in best else best["params"]
            if chosen is not None:
                winners.append(chosen)
    return WarmStart(trials, winners)


def seed_study(storage: str, name: str, warm: WarmStart) -> None:
    """Create the study with the earlier trials in it; Ray's OptunaSearch then loads it by name."""
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
    study.add_trials(warm.trials)
    study.set_user_attr("warm_start_trials", len(warm.trials))  # `lsdseg sweeps` counts only this sweep's own
