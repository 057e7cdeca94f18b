"""The population of a Population Based Training search, in the sweep's Optuna study.

Ray Tune runs PBT only with its basic variant generator, not with a searcher (PBT changes the configs a
searcher proposed). So the population is drawn here, from the same define-by-run space, as trials of the
sweep's Optuna study (at random: every member starts at once, so TPE would have nothing to learn from),
with the defaults and any warm-start winners first. Each member's config carries its Optuna number, which
names its runs as in any sweep; when the search ends, each Optuna trial is told its member's final score.
"""
from __future__ import annotations

from typing import Any, Optional

import optuna

from lsdseg.sweep.searcher import STATES, trial_outcome
from lsdseg.sweep.spaces import Space, sample

MEMBER = "member"  # a PBT trial's config: {MEMBER: {field path: value, ..., NUMBER: its Optuna number}}
# Not a config field (the trainable drops it), and true only until the trial's first exploit, which copies
# the other trial's whole config: it is read when the trial starts (its MLflow run keeps it), never later.
NUMBER = "optuna_trial_number"


def values(config: dict[str, Any]) -> dict[str, Any]:
    """A member's config values, without its number."""
    return {k: v for k, v in config[MEMBER].items() if k != NUMBER}


def number(config: Optional[dict[str, Any]]) -> Optional[int]:
    return ((config or {}).get(MEMBER) or {}).get(NUMBER)


def draw(space: Space, name: str, storage: str, study_name: str, seed: int, size: int, first: list[dict[str, Any]]) -> list[dict[str, Any]]:
    study = optuna.create_study(storage=storage, study_name=study_name, sampler=optuna.samplers.RandomSampler(seed=seed),
                                direction="maximize", load_if_exists=True)
    for point in first[:size]:
        study.enqueue_trial(point)
    members = []
    for _ in range(size):
        trial = study.ask()
        members.append({**sample(space, trial, name), NUMBER: trial.number})
    return members


def tell(storage: str, study_name: str, results: list[tuple[Optional[int], Optional[dict], bool]]) -> None:
    """(Optuna number, last result, errored) of every member: its final score, or how it failed."""
    study = optuna.load_study(study_name=study_name, storage=storage)
    open_trials = {t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
    for number, result, error in results:
        if number in open_trials:
            open_trials.remove(number)
            outcome = trial_outcome(result, error)
            study.tell(number, result.get("score") if outcome == "completed" else None, state=STATES[outcome])
