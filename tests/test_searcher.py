"""The searcher files stopped trials as PRUNED and diverged ones as FAIL in a real Optuna study, ends the
search at its budget, and comes back from its own save as it was."""
from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.search import Searcher

from lsdseg.sweep.searcher import OptunaSearcher, trial_outcome

pytestmark = pytest.mark.unit


def _space(trial):
    trial.suggest_float("loss.f_adv", 0.01, 1.0, log=True)


def _searcher(tmp_path, budget=5, first=()):
    return OptunaSearcher(_space, "test", "s", f"sqlite:///{tmp_path / 'o.db'}", optuna.samplers.RandomSampler(seed=0),
                          list(first), lambda: budget)


@pytest.mark.parametrize("result, error, state", [
    ({"score": 0.4, "step": 600, "iterations": 600}, False, TrialState.COMPLETE),
    ({"score": 0.2, "step": 100, "iterations": 600}, False, TrialState.PRUNED),  # ASHA's stop
    ({"score": 0.2, "step": 300, "iterations": 600, "run_status": "diverged"}, False, TrialState.FAIL),
    (None, True, TrialState.FAIL),
    (None, False, TrialState.PRUNED),  # stopped before its first evaluation
])
def test_outcomes_reach_optuna(tmp_path, result, error, state):
    searcher = _searcher(tmp_path)
    assert "loss.f_adv" in searcher.suggest("t1")
    searcher.on_trial_complete("t1", result=result, error=error)
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'o.db'}")
    assert [t.state for t in study.trials] == [state]
    assert searcher.optuna_number("t1") == 0
    if state == TrialState.COMPLETE:
        assert study.trials[0].value == 0.4
    if state == TrialState.PRUNED and result:  # the result ASHA stopped it on is not lost to TPE
        assert study.trials[0].intermediate_values == {100: 0.2}


def test_first_points_then_the_budget_then_finished(tmp_path):
    budget = [2]
    searcher = OptunaSearcher(_space, "test", "s", f"sqlite:///{tmp_path / 'o.db'}", optuna.samplers.RandomSampler(seed=0),
                              [{"loss.f_adv": 0.5}], lambda: budget[0])
    assert searcher.suggest("a") == {"loss.f_adv": 0.5}
    assert searcher.suggest("b") != {"loss.f_adv": 0.5}
    assert searcher.suggest("c") == Searcher.FINISHED
    budget[0] = 3  # a resume raised it
    assert searcher.suggest("c") not in (None, Searcher.FINISHED)


def test_a_restored_searcher_reports_and_tells_the_trials_it_proposed(tmp_path):
    searcher = _searcher(tmp_path)
    searcher.suggest("t1")
    searcher.on_trial_result("t1", {"score": 0.1, "step": 2})
    searcher.save(str(tmp_path / "searcher.pkl"))
    (tmp_path / "other").mkdir()
    again = _searcher(tmp_path / "other", budget=5)  # as Tune rebuilds it, then restores its state
    again.restore(str(tmp_path / "searcher.pkl"))
    again.on_trial_result("t1", {"score": 0.3, "step": 4})
    again.on_trial_complete("t1", {"score": 0.3, "step": 4, "iterations": 4})
    assert again.optuna_number("t1") == 0 and again.suggest("t2") is not None
    [done, running] = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'o.db'}").trials
    assert done.state == TrialState.COMPLETE and done.value == 0.3 and done.intermediate_values == {2: 0.1, 4: 0.3}
    assert running.state == TrialState.RUNNING and running.number == 1


def test_outcome_names():
    assert trial_outcome({"step": 6, "iterations": 6}, False) == "completed"
    assert trial_outcome({"step": 2, "iterations": 6}, False) == "pruned"
    assert trial_outcome({"step": 2, "iterations": 6}, True) == "errored"
