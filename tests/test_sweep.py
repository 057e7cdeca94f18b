"""Sweeps end to end with a real local Ray, a real sqlite MLflow store and a real Optuna study.

Invariants checked after a sweep (and after a driver killed mid-sweep and resumed): exactly one parent
run and one child per trial, none left RUNNING; every child's params equal Optuna's suggestion; every
child has an mIoU history with no gap; Optuna's trial states match the outcome Tune saw (a trial stopped
short of its iterations is PRUNED).
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import psutil
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from lsdseg.config_io import field_paths, load_config

STATES = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "diverged": TrialState.FAIL, "errored": TrialState.FAIL}


def tiny(cache_dir, iterations=6, eval_every=2):
    return [f"--data.cache_dir={cache_dir}", "--data.batch_size=2", "--data.synthetic_size=8", "--data.val_limit=4",
            "--data.crop_height=32", "--data.crop_width=64", "--model.small_width=4", "--model.g_width=4",
            "--model.d_width=4", f"--train.iterations={iterations}", f"--train.eval_every={eval_every}"]


def lsdseg(*args, cwd, wait=True):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "RAY_USAGE_STATS_ENABLED": "0"}
    cmd = [sys.executable, "-m", "lsdseg.cli", *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _has_metrics(db) -> bool:
    """Read-only look at the store: a client here would race the driver creating MLflow's tables."""
    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return con.execute("SELECT count(*) FROM metrics").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def children_of(client, parent_id, experiment_id):
    return client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'", max_results=1000)


def check_invariants(cwd, name, num_samples, iterations, eval_every):
    client = MlflowClient(f"sqlite:///{cwd}/mlflow.db")
    experiment = client.get_experiment_by_name("lsdseg")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("role") == "sweep" and r.data.tags.get("sweep") == name]
    assert len(parents) == 1
    assert {"git_sha", "search_space", "sampler_seed"} <= set(parents[0].data.tags)
    children = children_of(client, parents[0].info.run_id, experiment.experiment_id)
    assert len(children) == num_samples and len(runs) == num_samples + 1
    assert len({c.data.tags["ray_trial_id"] for c in children}) == num_samples
    assert [r.info.status for r in runs if r.info.status == "RUNNING"] == []

    study = optuna.load_study(study_name=name, storage=f"sqlite:///{cwd}/sweeps/{name}/optuna.db")
    trials = {t.number: t for t in study.trials}
    assert len(trials) == num_samples
    outcomes = []
    for child in children:
        trial = trials[int(child.data.tags["optuna_trial_number"])]
        for key, value in trial.params.items():
            assert child.data.params[key] == (repr(value) if isinstance(value, float) else str(value))
        steps = sorted({m.step for m in client.get_metric_history(child.info.run_id, "miou")})
        assert steps and steps == list(range(eval_every, steps[-1] + 1, eval_every))  # a history with no gap
        status = child.data.tags["status"]
        assert trial.state == STATES[status]
        assert (steps[-1] == iterations) == (status == "completed")
        if status == "pruned":  # the value it was stopped on reached TPE
            assert trial.intermediate_values
        outcomes.append(status)
    return outcomes


@pytest.mark.slow
def test_smoke_sweep_keeps_mlflow_optuna_and_tune_in_step(tmp_path, cache_dir):
    run = lsdseg("sweep", "--name", "s1", "--num-samples", "5", "--grace-period", "2", "--reduction-factor", "2",
                 *tiny(cache_dir), cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    outcomes = check_invariants(tmp_path, "s1", 5, 6, 2)
    assert outcomes.count("completed") >= 1
    assert "references: source only" in run.stdout and "mlflow ui --backend-store-uri sqlite:///" in run.stdout
    folder = tmp_path / "sweeps" / "s1"
    best = json.loads((folder / "best.json").read_text())
    resolved = field_paths(load_config(folder / "best_config.yaml"))  # the winner's config, ready for lsdseg train
    assert best["params"] and all(resolved[k] == v for k, v in best["params"].items())


@pytest.mark.slow
def test_driver_killed_mid_sweep_resumes_without_duplicates(tmp_path, cache_dir):
    args = ["sweep", "--name", "k1", "--num-samples", "4", "--grace-period", "8", *tiny(cache_dir, 24, 4)]
    driver = lsdseg(*args, cwd=tmp_path, wait=False)
    db = tmp_path / "mlflow.db"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and driver.poll() is None and not _has_metrics(db):  # the first trial result
        time.sleep(0.5)
    assert driver.poll() is None, "the sweep ended before it could be interrupted"
    ray_processes = psutil.Process(driver.pid).children(recursive=True)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    try:
        resumed = lsdseg("sweep", "--resume", str(tmp_path / "sweeps" / "k1"), cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        check_invariants(tmp_path, "k1", 4, 24, 4)
    finally:  # the killed driver's local Ray outlives it; do not leave it running
        for proc in ray_processes:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass


@pytest.mark.parametrize("args, message", [
    (["--space", "nosuch"], "unknown search space 'nosuch'"),
    (["--train.iterationz=3"], "unknown config key 'train.iterationz'"),
    (["--num-samples", "0"], "bad sweep option num_samples"),
])
def test_bad_space_or_config_fails_before_ray_starts(tmp_path, args, message):
    start = time.monotonic()
    run = lsdseg("sweep", *args, cwd=tmp_path)
    assert run.returncode == 1 and message in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "sweeps").exists() and not (tmp_path / "mlflow.db").exists()
    assert time.monotonic() - start < 30  # no Ray start-up was paid


def test_bad_space_file_range(tmp_path):
    (tmp_path / "space.py").write_text("def space(trial):\n    trial.suggest_float('optim.d_lr', 0.0, 1e-3, log=True)\n")
    run = lsdseg("sweep", "--space", "space.py", cwd=tmp_path)
    assert run.returncode == 1 and "is invalid" in run.stderr and not (tmp_path / "sweeps").exists()
