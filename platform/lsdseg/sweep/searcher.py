"""Ray Tune's OptunaSearch, telling Optuna the truth about trials that did not finish.

Tune reports an ASHA-stopped trial to the searcher with its last result, which stock OptunaSearch files
as COMPLETE (ray PR #15283 only covered results without a value), and never passes it that last result
as an intermediate value. Here a trial whose last result is
short of its planned iterations is told PRUNED, and a diverged one FAIL, so TPE learns from both
correctly and optuna-dashboard shows what happened.
"""
from __future__ import annotations

import logging
from typing import Optional

from optuna.trial import TrialState
from ray.air.constants import TRAINING_ITERATION
from ray.tune.search import ConcurrencyLimiter, SearchGenerator
from ray.tune.search.optuna import OptunaSearch

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


class HonestOptunaSearch(OptunaSearch):
    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        outcome = trial_outcome(result, error)
        value = result.get(self.metric) if outcome == "completed" else None
        if outcome == "pruned" and result and self.metric in result:
            # Tune skips on_trial_result for the result that made ASHA stop a trial: record it here, so
            # a trial stopped at its first rung still tells TPE how it did.
            self._ot_trials[trial_id].report(result[self.metric], result.get(TRAINING_ITERATION, result["step"]))
        try:
            self._ot_study.tell(self._ot_trials[trial_id], value, state=STATES[outcome])
        except Exception as exc:  # a finished Optuna trial (e.g. told before a driver crash) stays as it is
            log.warning("Optuna trial of %s not updated: %s", trial_id, exc)
        self._completed_trials.add(trial_id)

    def optuna_number(self, trial_id: str) -> Optional[int]:
        trial = self._ot_trials.get(trial_id)
        return None if trial is None else trial.number


class BudgetedSearch(SearchGenerator):
    """Tune's search generator whose trial budget can grow on resume (`--resume DIR --num-samples N`).

    Tune restores a generator's budget from the experiment state it saved; here the budget is re-read from
    `budget()` (the sweep's own record) after every restore, so raising it there raises it here.
    """

    def __init__(self, searcher: HonestOptunaSearch, max_concurrent: int, budget):
        super().__init__(ConcurrencyLimiter(searcher, max_concurrent=max_concurrent))
        self.budget = budget

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self._total_samples = max(self._total_samples, self.budget())
        self._finished = False  # Optuna never runs out of suggestions; only the budget ends a search
