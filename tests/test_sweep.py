"""Sweeps end to end with a real local Ray, a real sqlite MLflow store and a real Optuna study.

Invariants checked after a sweep (and after a driver killed or interrupted, then resumed): one parent run,
one child per search trial and one per confirmation run, none left RUNNING; every child's params equal
Optuna's suggestion; every history gap-free; Optuna's trial states match the outcome Tune saw; the
confirmation ran each planned (configuration, seed) exactly once; the winner is the best confirmed mean.
"""
from __future__ import annotations

import json
import os
import signal
import statistics

import optuna
import psutil
import pytest
from lsdseg.config_io import field_paths, load_config
from mlflow.tracking import MlflowClient
from sweeps import check_invariants, children_of, lsdseg, tiny, wait_for_metrics


def _confirmed_means(tracking_uri: str, folder) -> dict[int, float]:
    """Each confirmed configuration's mean score over its seeds, recomputed from MLflow and the plan."""
    state = json.loads((folder / "sweep.json").read_text())
    client = MlflowClient(tracking_uri)
    runs = children_of(client, state["parent_run_id"], state["experiment_id"])
    scores: dict[int, dict[int, float]] = {c["rank"]: {} for c in state["confirm"]["candidates"]}
    for c in state["confirm"]["candidates"]:
        for run in runs:
            tags = run.data.tags
            same = tags["phase"] == "confirm" and int(tags["confirm_rank"]) == c["rank"] or (
                tags["phase"] == "search" and c["from_search"] and c["number"] is not None and tags["optuna_trial_number"] == str(c["number"])
                and tags["status"] == "completed")
            if same:
                scores[c["rank"]][int(tags["seed"])] = run.data.metrics["score"]
    assert all(sorted(s) == state["confirm"]["seeds"] for s in scores.values())  # every config on the same seeds
    return {rank: statistics.fmean(s.values()) for rank, s in scores.items()}


@pytest.mark.slow
def test_smoke_sweep_confirms_the_best_on_fresh_seeds(tmp_path, cache_dir):
    run = lsdseg("sweep", "--name", "s1", "--num-samples", "5", "--grace-period", "2", "--reduction-factor", "2",
                 "--confirm-top", "2", "--confirm-seeds", "1", *tiny(cache_dir), cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    uri, folder = f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "sweeps" / "s1"
    outcomes = check_invariants(uri, folder, 5, 6, 2)
    assert len(outcomes["completed"]) >= 1
    state = json.loads((folder / "sweep.json").read_text())
    assert state["confirm"]["seeds"] == [0, 1] and [c["rank"] for c in state["confirm"]["candidates"]][0] == 0  # defaults first
    means = _confirmed_means(uri, folder)
    best = json.loads((folder / "best.json").read_text())
    assert best["confirmed"]["rank"] == max(means, key=means.get)
    assert best["confirmed"]["mean"] == pytest.approx(max(means.values()))
    parent = MlflowClient(uri).get_run(state["parent_run_id"])
    assert parent.data.metrics["confirmed_mean"] == pytest.approx(max(means.values()))
    # lineage: which files every run read (root, digest of the split's file list), by role
    trial = children_of(MlflowClient(uri), state["parent_run_id"], state["experiment_id"])[0]
    for logged in (parent, MlflowClient(uri).get_run(trial.info.run_id)):
        inputs = {i.tags[0].value: i.dataset for i in logged.inputs.dataset_inputs}
        assert set(inputs) == {"source", "source_val", "target", "target_val"}
        assert inputs["target_val"].name == "synthetic/target_val" and inputs["target_val"].digest == state["data"]["target_val"]["digest"][:36]
    resolved = field_paths(load_config(folder / "best_config.yaml"))  # the winner's config, ready for lsdseg train
    assert all(resolved[k] == v for k, v in best["params"].items())
    # the first screen is the product's: the libraries' start-up chatter is in the sweep's log
    for noise in ("Creating initial MLflow database tables", "Token authentication", "TensorBoard", "Configuration for experiment"):
        assert noise not in run.stdout + run.stderr and noise in (folder / "sweep.log").read_text()
    assert "confirmation: each configuration on seeds [0, 1]" in run.stdout and "trial-0: iteration 2/6" in run.stdout
    assert "references: source only" in run.stdout and "mlflow ui --backend-store-uri sqlite:///" in run.stdout
    assert run.stdout.index("live views:") < run.stdout.index("trial-0:")  # the live views are printed as it starts
    assert f"optuna-dashboard sqlite:///{folder}/optuna.db" in run.stdout


@pytest.mark.slow
def test_population_based_training_replays_its_schedules_on_every_seed(tmp_path, cache_dir):
    """PBT: a population of 4 running at once; trials copy stronger ones' checkpoints with perturbed values
    (MLflow draws each trial's values per evaluation); the confirmation replays each chosen schedule from
    scratch on every seed, the search's own included, since no search trial is a plain run of it."""
    run = lsdseg("sweep", "--name", "p1", "--scheduler", "pbt", "--num-samples", "4", "--concurrency", "4",
                 "--cpus-per-trial", "0.5", "--pbt-interval", "2", "--confirm-top", "2", "--confirm-seeds", "1",
                 "--no-references", *tiny(cache_dir, iterations=8), cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    uri, folder = f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "sweeps" / "p1"
    state = json.loads((folder / "sweep.json").read_text())
    candidates = state["confirm"]["candidates"]
    assert not any(c["from_search"] for c in candidates)
    outcomes = check_invariants(uri, folder, 4, 8, 2, confirm_runs=len(candidates) * 2)  # all of them, on both seeds
    assert len(outcomes["completed"]) == 4  # PBT stops no trial
    client = MlflowClient(uri)
    schedules = [[v.value for v in client.get_metric_history(r.run_id, "config/optim.f_lr")] for r in
                 [*(c.info for c in outcomes["completed"])]]
    assert all(len(s) == 4 for s in schedules)  # the values in force at each of the 4 evaluations
    assert any(len(set(s)) > 1 for s in schedules)  # some trial took another's weights with new values
    exploited = [c for c in candidates if c["changes"]]
    replays = children_of(client, state["parent_run_id"], state["experiment_id"])
    for c in exploited:  # its confirmation runs carry its schedule and resumed at each change
        runs = [r for r in replays if r.data.tags.get("confirm_rank") == str(c["rank"])]
        assert runs and all(json.loads(r.data.tags["schedule_changes"]) == c["changes"] for r in runs)
    means = _confirmed_means(uri, folder)
    assert json.loads((folder / "best.json").read_text())["confirmed"]["rank"] == max(means, key=means.get)
    assert "scheduler pbt needs its whole population" in lsdseg("sweep", "--scheduler", "pbt", cwd=tmp_path).stderr


@pytest.mark.slow
def test_a_sweep_without_target_labels_selects_by_a_validator(tmp_path, cache_dir):
    """A real setup: the target's labels are not used. Information maximisation steers the sweep; no run
    logs a target mIoU, so nothing was selected on it."""
    run = lsdseg("sweep", "--name", "u1", "--num-samples", "2", "--scheduler", "none", "--confirm-top", "1", "--confirm-seeds", "1",
                 "--no-references", "--objective", "im", "--data.target_labels=false", *tiny(cache_dir, iterations=4), cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    state = json.loads((tmp_path / "sweeps" / "u1" / "sweep.json").read_text())
    runs = children_of(MlflowClient(state["tracking_uri"]), state["parent_run_id"], state["experiment_id"])
    assert len(runs) == 2 + 2 and all("val/im" in r.data.metrics and "miou" not in r.data.metrics for r in runs)
    assert "score (mean of the last 3 evaluations of im" in run.stdout and "winner:" in run.stdout


@pytest.mark.slow
def test_a_sweep_in_which_no_trial_completes_fails_and_names_no_winner(tmp_path, cache_dir):
    run = lsdseg("sweep", "--name", "f1", "--num-samples", "2", "--max-failures", "0", "--no-references", "--confirm-top", "0",
                 "--faults.crash_at=1", *tiny(cache_dir, iterations=4), cwd=tmp_path)
    folder = tmp_path / "sweeps" / "f1"
    assert run.returncode == 1 and "no search trial completed" in run.stderr and "Traceback" not in run.stderr
    assert not (folder / "best.json").exists() and not (folder / "best_config.yaml").exists()
    assert json.loads((folder / "sweep.json").read_text())["status"] == "failed"
    resumed = lsdseg("sweep", "--resume", str(folder), cwd=tmp_path)
    assert resumed.returncode == 1 and "ended with no completed trial" in resumed.stderr


def _kill_tree(processes) -> None:
    for proc in processes:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.mark.slow
def test_driver_killed_during_confirmation_resumes_with_exact_counts(tmp_path, cache_dir):
    args = ["sweep", "--name", "k1", "--num-samples", "3", "--scheduler", "none", "--confirm-top", "1",
            "--confirm-seeds", "2", *tiny(cache_dir, 24, 4)]
    driver = lsdseg(*args, cwd=tmp_path, wait=False)
    wait_for_metrics(driver, tmp_path / "mlflow.db", phase="confirm")
    ray_processes = psutil.Process(driver.pid).children(recursive=True)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    try:
        resumed = lsdseg("sweep", "--resume", str(tmp_path / "sweeps" / "k1"), cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        check_invariants(f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "sweeps" / "k1", 3, 24, 4)
    finally:  # the killed driver's local Ray outlives it; do not leave it running
        _kill_tree(ray_processes)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, cache_dir):
    """A sweep stopped by SIGINT at its first evaluation: (its working folder, the driver's stdout, stderr, status)."""
    cwd = tmp_path_factory.mktemp("interrupted")
    driver = lsdseg("sweep", "--name", "i1", "--num-samples", "3", "--grace-period", "8", "--confirm-top", "1",
                    "--confirm-seeds", "1", *tiny(cache_dir, 24, 4), cwd=cwd, wait=False, split=True)
    wait_for_metrics(driver, cwd / "mlflow.db")
    ray_processes = psutil.Process(driver.pid).children(recursive=True)
    driver.send_signal(signal.SIGINT)
    out, err = driver.communicate(timeout=120)
    _kill_tree(ray_processes)
    return cwd, out, err, driver.returncode


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_resume_raises_the_budget(interrupted):
    cwd, out, err, status = interrupted
    folder = cwd / "sweeps" / "i1"
    assert status == 130 and "Traceback" not in err and "Tuner.restore" not in out + err
    assert f"lsdseg sweep --resume {folder}" in err
    client = MlflowClient(f"sqlite:///{cwd}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("lsdseg").experiment_id])
    assert runs and [r.info.status for r in runs if r.info.status == "RUNNING"] == []
    assert any(r.info.status == "KILLED" and r.data.tags.get("role") == "sweep" for r in runs)
    listed = lsdseg("sweeps", cwd=cwd)
    assert listed.returncode == 0 and "i1" in listed.stdout and "interrupted" in listed.stdout

    for bad in (["--seed", "3"], ["--train.iterations=3"], ["--num-samples", "2"]):
        refused = lsdseg("sweep", "--resume", str(folder), *bad, cwd=cwd)
        assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr

    resumed = lsdseg("sweep", "--resume", str(folder), "--num-samples", "4", cwd=cwd)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    check_invariants(f"sqlite:///{cwd}/mlflow.db", folder, 4, 24, 4)


@pytest.mark.slow
def test_warm_start_copies_finished_trials_and_refuses_another_space(interrupted, cache_dir):
    cwd = interrupted[0]
    if not (cwd / "sweeps" / "i1" / "best.json").exists():  # run alone, without the resume test before it
        assert lsdseg("sweep", "--resume", str(cwd / "sweeps" / "i1"), cwd=cwd).returncode == 0
    first = optuna.load_study(study_name="i1", storage=f"sqlite:///{cwd}/sweeps/i1/optuna.db")
    assert first.trials and all(t.state.is_finished() for t in first.trials)

    refused = lsdseg("sweep", "--name", "w0", "--space", "loss_weights", "--warm-start", "i1", *tiny(cache_dir), cwd=cwd)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1 and "does not fit this search space" in refused.stderr
    assert not (cwd / "sweeps" / "w0").exists()

    run = lsdseg("sweep", "--name", "w1", "--warm-start", "i1", "--num-samples", "2", "--confirm-top", "0", *tiny(cache_dir, 24, 4), cwd=cwd)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    second = optuna.load_study(study_name="w1", storage=f"sqlite:///{cwd}/sweeps/w1/optuna.db")
    copied = [t for t in first.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert [t.params for t in second.trials[:len(copied)]] == [t.params for t in copied]
    assert [t.value for t in second.trials[:len(copied)]] == [t.value for t in copied]
    winner = json.loads((cwd / "sweeps" / "i1" / "best.json").read_text())["params"]
    assert second.trials[len(copied)].params == winner  # the earlier winner is proposed first
    check_invariants(f"sqlite:///{cwd}/mlflow.db", cwd / "sweeps" / "w1", 2, 24, 4)


@pytest.mark.parametrize("args, message", [
    (["--space", "nosuch"], "unknown search space 'nosuch'"),
    (["--train.iterationz=3"], "unknown config key 'train.iterationz'"),
    (["--num-samples", "0"], "bad sweep option num_samples"),
    (["--warm-start", "nosuch"], "no sweep 'nosuch'"),
    (["--data.target_labels=false"], "train.objective=target_miou needs target labels"),  # the default objective
    (["--data.source.name=gta5", "--data.source.root=/no/such/dir"], "/no/such/dir not found"),  # checked as train does
    (["--tracking-uri", "foo://bar"], "MLflow store foo://bar cannot be reached"),
    (["--tracking-uri", "http://127.0.0.1:9"], "MLflow store http://127.0.0.1:9 cannot be reached"),  # nothing listens there
])
def test_bad_space_or_config_fails_before_ray_starts(tmp_path, args, message):
    import time

    start = time.monotonic()
    run = lsdseg("sweep", *args, cwd=tmp_path)
    assert run.returncode == 1 and message in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "sweeps").exists() and not (tmp_path / "mlflow.db").exists()
    assert time.monotonic() - start < 30  # no Ray start-up was paid


@pytest.mark.parametrize("body, message", [
    ("    trial.suggest_floaty('optim.d_lr', 1e-5, 1e-3)\n", "fails when it runs (AttributeError"),
    ("    import sys\n    sys.exit(0)\n", "fails when it runs (SystemExit"),
])
def test_a_space_that_breaks_when_it_runs_is_one_line(tmp_path, body, message):
    (tmp_path / "space.py").write_text("def space(trial):\n" + body)
    run = lsdseg("sweep", "--space", "space.py", cwd=tmp_path)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1 and message in lines[0] and not (tmp_path / "sweeps").exists()


def test_bad_space_file_range(tmp_path):
    (tmp_path / "space.py").write_text("def space(trial):\n    trial.suggest_float('optim.d_lr', 0.0, 1e-3, log=True)\n")
    run = lsdseg("sweep", "--space", "space.py", cwd=tmp_path)
    assert run.returncode == 1 and "is invalid" in run.stderr and not (tmp_path / "sweeps").exists()
