"""Who proposes a sweep's trials: Optuna for the search, the race's searcher for what follows, and the drawn
population of a Population Based Training search.

`OptunaSearcher` drives an Optuna study through Optuna's ask-and-tell API behind Ray Tune's public `Searcher`
interface, keeping its own record of the Tune trials it proposed: Ray's OptunaSearch keeps that record in
private attributes, which a Ray release may rename. It tells Optuna the truth about trials that did not finish:
a trial stopped early (ASHA) is PRUNED, with the value it was stopped on, and a diverged or crashed one FAIL,
so TPE learns from both correctly and optuna-dashboard shows what happened (stock OptunaSearch files a
stopped trial as COMPLETE). It also ends the search itself, at a budget it re-reads on every proposal, so
`--resume DIR --num-samples N` can raise it (Tune runs the search with an unlimited number of samples).
"""
from __future__ import annotations

import logging
import math
import pickle
from typing import Any, Callable, Optional

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from lsdseg.sweep.race import Race, Run
from lsdseg.sweep.spaces import Space, sample
from lsdseg.trainables.lsdseg_trainable import NUMBER

log = logging.getLogger(__name__)


def trial_outcome(result: Optional[dict], error: bool) -> str:
    """completed / pruned / diverged / errored, from a trial's last result (shared with MLflow tags)."""
    if error:
        return "errored"
    if not result or "step" not in result:
        return "pruned"  # stopped before its first evaluation
    if result.get("run_status") == "diverged":
        return "diverged"
    return "completed" if result["step"] >= result["iterations"] else "pruned"


STATES = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "diverged": TrialState.FAIL, "errored": TrialState.FAIL}


class OptunaSearcher(Searcher):
    """One Optuna trial per Tune trial, asked for when Tune wants a trial and told when it ends.

    `first`: points proposed before the sampler's own (enqueued once, in the study); `budget()`: how many
    trials the search may propose in all."""

    def __init__(self, space: Space, space_name: str, study_name: str, storage: str, sampler: optuna.samplers.BaseSampler,
                 first: list[dict[str, Any]], budget: Callable[[], int]):
        super().__init__(metric="score", mode="max")
        self.space, self.space_name, self.budget = space, space_name, budget
        self.study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler, direction="maximize",
                                         load_if_exists=True)
        for point in first:
            self.study.enqueue_trial(point)
        self.trials: dict[str, optuna.Trial] = {}  # Tune trial id -> its Optuna trial
        self.told: set[str] = set()

    def suggest(self, trial_id: str) -> Optional[dict] | str:
        if len(self.trials) >= self.budget():
            return Searcher.FINISHED
        trial = self.study.ask()
        self.trials[trial_id] = trial
        return sample(self.space, trial, self.space_name)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.trials and trial_id not in self.told and self.metric in result:
            self.trials[trial_id].report(result[self.metric], result["step"])

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        if trial_id in self.told or trial_id not in self.trials:
            return
        outcome = trial_outcome(result, error)
        value = result.get(self.metric) if outcome == "completed" else None
        if outcome == "pruned" and result and self.metric in result:
            # Tune skips on_trial_result for the result that made ASHA stop a trial: record it here, so
            # a trial stopped at its first rung still tells TPE how it did.
            self.trials[trial_id].report(result[self.metric], result["step"])
        try:
            self.study.tell(self.trials[trial_id], value, state=STATES[outcome])
        except Exception as exc:  # a finished Optuna trial (e.g. told before a driver crash) stays as it is
            log.warning("Optuna trial of %s not updated: %s", trial_id, exc)
        self.told.add(trial_id)

    def optuna_number(self, trial_id: str) -> Optional[int]:
        trial = self.trials.get(trial_id)
        return None if trial is None else trial.number

    def save(self, checkpoint_path: str) -> None:
        # the study pickles as its name and storage URL (Optuna's RDB storage reconnects), the sampler with its
        # random state, each trial as its number in that study; the budget stays the restoring driver's
        with open(checkpoint_path, "wb") as f:
            pickle.dump({k: v for k, v in self.__dict__.items() if k != "budget"}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


class RaceSearcher(Searcher):
    """Proposes the runs after the search, one (configuration, seed) per Tune trial, as `Race` decides:
    race runs on selection seeds, then the candidate's and the defaults' verification runs. On a cluster the
    runs of one round go to different nodes at once; Ray's own `Repeater` only averages a fixed number of
    seeds per configuration, and Optuna's `WilcoxonPruner` runs a configuration's seeds one after another."""

    def __init__(self, race: Race, points: Callable[[Run], dict[str, Any]]):
        super().__init__(metric="score", mode="max")
        self.race, self.points = race, points
        self.running: dict[str, Run] = {}

    def suggest(self, trial_id: str) -> Optional[dict] | str:
        run = self.race.next(list(self.running.values()))
        if run == "done":
            return Searcher.FINISHED
        if run is None:
            return None
        self.running[trial_id] = run
        return {"point": self.points(run)}

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        run = self.running.pop(trial_id, None)
        if run is not None:
            done = trial_outcome(result, error) == "completed"
            self.race.record(run, result[self.metric] if done else math.nan)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"race": self.race, "running": self.running}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            saved = pickle.load(f)
        self.race, self.running = saved["race"], saved["running"]


# --- Population Based Training ------------------------------------------------------------------------------------------
# Ray Tune runs PBT only with its basic variant generator, not with a searcher (PBT changes the configs a searcher
# proposed). So the population is drawn here, from the same define-by-run space, as trials of the sweep's Optuna
# study (at random: every member starts at once, so TPE would have nothing to learn from), with the defaults and any
# warm-start candidates first. Each member's config carries its Optuna number, which names its runs as in any sweep;
# when the search ends, each Optuna trial is told its member's final score.

def draw_population(space: Space, name: str, storage: str, study_name: str, seed: int, size: int,
                    first: list[dict[str, Any]]) -> list[dict[str, Any]]:
    study = optuna.create_study(storage=storage, study_name=study_name, sampler=optuna.samplers.RandomSampler(seed=seed),
                                direction="maximize", load_if_exists=True)
    for point in first[:size]:
        study.enqueue_trial(point)
    members = []
    for _ in range(size):
        trial = study.ask()
        members.append({**sample(space, trial, name), NUMBER: trial.number})
    return members


def tell_population(storage: str, study_name: str, results: list[tuple[Optional[int], Optional[dict], bool]]) -> None:
    """(Optuna number, last result, errored) of every member: its final score, or how it failed."""
    study = optuna.load_study(study_name=study_name, storage=storage)
    open_trials = {t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
    for number, result, error in results:
        if number in open_trials:
            open_trials.remove(number)
            outcome = trial_outcome(result, error)
            study.tell(number, result.get("score") if outcome == "completed" else None, state=STATES[outcome])
