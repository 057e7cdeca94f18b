"""Helpers for tests that run real sweeps: the `lsdseg` command in a subprocess, tiny configs, and the
invariants a finished sweep must satisfy across MLflow, Optuna and Ray Tune."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

STATES = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "diverged": TrialState.FAIL, "errored": TrialState.FAIL}


def tiny(cache_dir, iterations=6, eval_every=2):
    return [f"--data.cache_dir={cache_dir}", "--data.batch_size=2", "--data.synthetic_size=8", "--data.val_limit=4",
            "--data.crop_height=32", "--data.crop_width=64", "--model.small_width=4", "--model.g_width=4",
            "--model.d_width=4", f"--train.iterations={iterations}", f"--train.eval_every={eval_every}"]


def lsdseg(*args, cwd, wait=True, env=None, timeout=600):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
    cmd = [sys.executable, "-m", "lsdseg.cli", *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def has_metrics(db: Path) -> bool:
    """Read-only look at a sqlite store: a client here would race the driver creating MLflow's tables."""
    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return con.execute("SELECT count(*) FROM metrics").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def children_of(client, parent_id, experiment_id):
    return client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'", max_results=1000)


def check_invariants(tracking_uri, folder: Path, num_samples, iterations, eval_every):
    """One parent and one child per trial, none RUNNING; params equal Optuna's; gap-free mIoU histories;
    Optuna's states equal the outcomes Tune saw. Returns {status: [child runs]}."""
    name = folder.name
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("lsdseg")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.sweep = '{name}'", max_results=1000)
    assert len(runs) == 1 and runs[0].data.tags.get("role") == "sweep"
    parent = runs[0]
    assert {"git_sha", "search_space", "sampler_seed"} <= set(parent.data.tags)
    children = children_of(client, parent.info.run_id, experiment.experiment_id)
    assert len(children) == num_samples
    assert len({c.data.tags["ray_trial_id"] for c in children}) == num_samples
    assert [r.info.status for r in [parent, *children] if r.info.status == "RUNNING"] == []

    study = optuna.load_study(study_name=name, storage=f"sqlite:///{folder}/optuna.db")
    trials = {t.number: t for t in study.trials}
    assert len(trials) == num_samples
    outcomes: dict[str, list] = {}
    for child in children:
        trial = trials[int(child.data.tags["optuna_trial_number"])]
        for key, value in trial.params.items():
            assert child.data.params[key] == (repr(value) if isinstance(value, float) else str(value))
        steps = sorted({m.step for m in client.get_metric_history(child.info.run_id, "miou")})
        status = child.data.tags["status"]
        if status != "errored":  # a trial may crash before its first evaluation
            assert steps and steps == list(range(eval_every, steps[-1] + 1, eval_every))  # a history with no gap
        assert trial.state == STATES[status]
        assert (bool(steps) and steps[-1] == iterations) == (status == "completed")
        if status == "pruned":  # the value it was stopped on reached TPE
            assert trial.intermediate_values
        outcomes.setdefault(status, []).append(child)
    return outcomes
