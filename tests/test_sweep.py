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
import time

import psutil
import pytest
from lsdseg.config_io import field_paths, load_config
from sweeps import check_invariants, has_metrics, lsdseg, tiny


@pytest.mark.slow
def test_smoke_sweep_keeps_mlflow_optuna_and_tune_in_step(tmp_path, cache_dir):
    run = lsdseg("sweep", "--name", "s1", "--num-samples", "5", "--grace-period", "2", "--reduction-factor", "2",
                 *tiny(cache_dir), cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    outcomes = check_invariants(f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "sweeps" / "s1", 5, 6, 2)
    assert len(outcomes["completed"]) >= 1
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
    while time.monotonic() < deadline and driver.poll() is None and not has_metrics(db):  # the first trial result
        time.sleep(0.5)
    assert driver.poll() is None, "the sweep ended before it could be interrupted"
    ray_processes = psutil.Process(driver.pid).children(recursive=True)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    try:
        resumed = lsdseg("sweep", "--resume", str(tmp_path / "sweeps" / "k1"), cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        check_invariants(f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "sweeps" / "k1", 4, 24, 4)
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
