"""The searcher files stopped trials as PRUNED and diverged ones as FAIL in a real Optuna study."""
from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from lsdseg.sweep.searcher import HonestOptunaSearch, trial_outcome

pytestmark = pytest.mark.unit


def _space(trial):
    trial.suggest_float("loss.f_adv", 0.01, 1.0, log=True)


@pytest.mark.parametrize("result, error, state", [
    ({"miou": 0.4, "step": 600, "iterations": 600}, False, TrialState.COMPLETE),
    ({"miou": 0.2, "step": 100, "iterations": 600, "training_iteration": 1}, False, TrialState.PRUNED),  # ASHA's stop
    ({"miou": 0.2, "step": 300, "iterations": 600, "run_status": "diverged"}, False, TrialState.FAIL),
    (None, True, TrialState.FAIL),
    (None, False, TrialState.PRUNED),  # stopped before its first evaluation
])
def test_outcomes_reach_optuna(tmp_path, result, error, state):
    searcher = HonestOptunaSearch(space=_space, metric="miou", mode="max",
                                  storage=optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'o.db'}"), study_name="s")
    searcher.set_search_properties(None, None, {})
    assert searcher.suggest("t1") is not None
    searcher.on_trial_complete("t1", result=result, error=error)
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'o.db'}")
    assert [t.state for t in study.trials] == [state]
    assert searcher.optuna_number("t1") == 0
    if state == TrialState.COMPLETE:
        assert study.trials[0].value == 0.4
    if state == TrialState.PRUNED and result:  # the result ASHA stopped it on is not lost to TPE
        assert study.trials[0].intermediate_values == {1: 0.2}


def test_outcome_names():
    assert trial_outcome({"step": 6, "iterations": 6}, False) == "completed"
    assert trial_outcome({"step": 2, "iterations": 6}, False) == "pruned"
    assert trial_outcome({"step": 2, "iterations": 6}, True) == "errored"
