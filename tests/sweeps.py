"""Helpers for tests that run real sweeps: the `lsdseg` command in a subprocess, tiny configs, and the
invariants a finished sweep must satisfy across MLflow, Optuna and Ray Tune."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

STATES = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "diverged": TrialState.FAIL, "errored": TrialState.FAIL}


def tiny(cache_dir, iterations=6, eval_every=2):
    return [f"--data.cache_dir={cache_dir}", "--data.batch_size=2", "--data.synthetic_size=8", "--data.val_limit=4",
            "--data.crop_height=32", "--data.crop_width=64", "--model.small_width=4", "--model.g_width=4",
            "--model.d_width=4", f"--train.iterations={iterations}", f"--train.eval_every={eval_every}"]


def lsdseg(*args, cwd, wait=True, env=None, timeout=600, split=False):
    # MLFLOW_TRACKING_URI is the --tracking-uri default: one set by an earlier test (or the shell) must not
    # send this sweep's runs to another store
    inherited = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env = {**inherited, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
    cmd = [sys.executable, "-m", "lsdseg.cli", *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE if split else subprocess.STDOUT,
                                text=True)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def has_metrics(db: Path, phase: str = "search") -> bool:
    """Whether a run of `phase` has logged a metric. A read-only look at the sqlite store: a client here
    would race the driver creating MLflow's tables."""
    if not db.exists():
        return False
    query = ("SELECT count(*) FROM metrics m JOIN tags t ON t.run_uuid = m.run_uuid WHERE t.key = 'phase' AND t.value = ?")
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return con.execute(query, (phase,)).fetchone()[0] > 0
    except sqlite3.Error:
        return False


def wait_for_metrics(driver, db: Path, phase: str = "search", timeout: float = 300) -> None:
    """Until the first `phase` run logged an evaluation; fails if the sweep ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and driver.poll() is None and not has_metrics(db, phase):
        time.sleep(0.5)
    assert driver.poll() is None, "the sweep ended before it could be interrupted: " + driver.stdout.read()[-3000:]


def children_of(client, parent_id, experiment_id):
    return client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'", max_results=1000)


def check_invariants(tracking_uri, folder: Path, num_samples, iterations, eval_every):
    """One parent; one child per search trial (phase=search) and per race or verification run, none RUNNING;
    search params equal Optuna's; gap-free histories; Optuna's states equal the outcomes Tune saw; every race
    and verification run ran once, to its end; the verification seeds are disjoint from every seed a search
    or race run used, and each look holds the candidate and the defaults on exactly its seeds.
    Returns {status: [search runs]}."""
    name = folder.name
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("lsdseg")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.sweep = '{name}'", max_results=1000)
    assert len(runs) == 1 and runs[0].data.tags.get("role") == "sweep"
    parent = runs[0]
    assert {"git_sha", "search_space", "sampler_seed"} <= set(parent.data.tags)
    everything = children_of(client, parent.info.run_id, experiment.experiment_id)
    assert [r.info.status for r in [parent, *everything] if r.info.status not in ("FINISHED", "FAILED")] == []
    assert len({c.data.tags["ray_trial_id"] for c in everything}) == len(everything)
    assert all("None" not in c.data.tags.values() for c in everything)
    assert {c.data.tags["phase"] for c in everything} <= {"search", "race", "verify"}
    children = [c for c in everything if c.data.tags["phase"] == "search"]
    later = [c for c in everything if c.data.tags["phase"] != "search"]
    assert len(children) == num_samples
    state = json.loads((folder / "sweep.json").read_text())
    keys = [(c.data.tags.get("optuna_trial_number"), c.data.tags.get("defaults"), c.data.tags["seed"], c.data.tags["phase"]) for c in later]
    assert len(keys) == len(set(keys))  # no (configuration, seed) run twice
    length = state["search_iterations"] or iterations  # a search trial's length
    for c in later:
        assert c.data.tags["status"] == "completed" and c.data.params["train.seed"] == c.data.tags["seed"]
        steps = [m.step for m in client.get_metric_history(c.info.run_id, "miou")]
        # a race run that continues its search trial logs the evaluations after the search's length
        first = length + eval_every if c.data.tags.get("continues") == "search" else eval_every
        assert steps == list(range(first, int(c.data.tags["iterations"]) + 1, eval_every))
        if c.data.tags.get("continues") == "search":
            assert c.data.tags["phase"] == "race" and length < iterations and c.data.tags["seed"] == children[0].data.tags["seed"]
    verify = [c for c in later if c.data.tags["phase"] == "verify"]
    selection_seeds = {int(c.data.tags["seed"]) for c in everything if c.data.tags["phase"] != "verify"}
    for k, look in enumerate(state["looks"], start=1):
        mine = [c for c in verify if c.data.tags["look"] == str(k)]
        assert not selection_seeds & set(look["seeds"])  # held out: no search or race run used them
        if mine:
            assert sorted(int(c.data.tags["seed"]) for c in mine if c.data.tags.get("defaults") == "true") == look["seeds"]
            assert sorted(int(c.data.tags["seed"]) for c in mine if c.data.tags.get("defaults") != "true") == look["seeds"]

    study = optuna.load_study(study_name=name, storage=state["settings"]["study_uri"] or f"sqlite:///{folder}/optuna.db")
    warm = study.user_attrs.get("warm_start_trials", 0)  # copied from earlier sweeps: no run of this one
    trials = {t.number: t for t in study.trials[warm:]}
    assert len(trials) == num_samples
    outcomes: dict[str, list] = {}
    for child in children:
        trial = trials[int(child.data.tags["optuna_trial_number"])]
        for key, value in trial.params.items():
            assert child.data.params[key] == (repr(value) if isinstance(value, float) else str(value))
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "miou")]  # each evaluation logged once
        status = child.data.tags["status"]
        if status != "errored":  # a trial may crash before its first evaluation
            assert steps and steps == list(range(eval_every, steps[-1] + 1, eval_every))  # a history with no gap
        assert trial.state == STATES[status]
        assert (bool(steps) and steps[-1] == length) == (status == "completed")
        if status == "pruned":  # the value it was stopped on reached TPE
            assert trial.intermediate_values
        outcomes.setdefault(status, []).append(child)
    return outcomes


def verified_difference(tracking_uri, folder: Path, look: int = 1) -> float:
    """The mean paired difference candidate - defaults over one look's verification runs, from MLflow alone."""
    state = json.loads((folder / "sweep.json").read_text())
    client = MlflowClient(tracking_uri)
    runs = [r for r in children_of(client, state["parent_run_id"], state["experiment_id"])
            if r.data.tags["phase"] == "verify" and r.data.tags["look"] == str(look)]
    cand = {r.data.tags["seed"]: r.data.metrics["score"] for r in runs if r.data.tags.get("defaults") != "true"}
    base = {r.data.tags["seed"]: r.data.metrics["score"] for r in runs if r.data.tags.get("defaults") == "true"}
    assert set(cand) == set(base) and cand
    return sum(cand[s] - base[s] for s in cand) / len(cand)
