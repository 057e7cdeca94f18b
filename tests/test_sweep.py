"""Sweeps end to end with a real local Ray, a real sqlite MLflow store and a real Optuna study.

Invariants checked after a sweep (and after a driver killed or interrupted, then resumed): one parent run,
one child per search trial and per race or verification run, none left RUNNING; every child's params equal
Optuna's suggestion; every history gap-free; Optuna's trial states match the outcome Tune saw; the
verification seeds are disjoint from every selection seed; the figure of what was shipped comes from the
verification runs alone.

Which configuration wins must not be left to the noise of a 6-iteration run: these sweeps select by target
entropy, and a space whose F learns 10^7 times faster than the default weights' (F's learning rate 1e-9)
is, on every seed, more confident.
"""
from __future__ import annotations

import json
import os
import signal

import optuna
import psutil
import pytest
from mlflow.tracking import MlflowClient
from sweeps import check_invariants, children_of, lsdseg, tiny, verified_difference, wait_for_metrics

from lsdseg.config_io import field_paths, load_config

pytestmark = pytest.mark.e2e

FAST_F = "def space(trial):\n    trial.suggest_float('optim.f_lr', 2e-2, 5e-2, log=True)\n"
CLEAR = ["--space", "space.py", "--optim.f_lr=1e-9", "--objective", "entropy", "--num-samples", "2", "--selection-seeds", "2",
         "--race-runs", "2", "--verify-seeds", "2"]


def _sweep(cwd, name, cache_dir, *extra):
    (cwd / "space.py").write_text(FAST_F)
    run = lsdseg("sweep", "--name", name, *CLEAR, *extra, *tiny(cache_dir), cwd=cwd)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.mark.slow
def test_a_candidate_that_wins_on_held_out_seeds_is_shipped_with_figures_from_them_alone(tmp_path, cache_dir):
    run = _sweep(tmp_path, "s1", cache_dir, "--alpha", "0.25")
    uri, folder = f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "sweeps" / "s1"
    outcomes = check_invariants(uri, folder, 2, 6, 2)
    assert len(outcomes["completed"]) == 2
    best = json.loads((folder / "best.json").read_text())
    state = json.loads((folder / "sweep.json").read_text())
    assert best["shipped"] == "candidate" and best["looks"][0]["ship"] and state["looks"][0]["seeds"] == [1000, 1001]
    assert best["looks"][0]["evidence"]["mean"] == pytest.approx(verified_difference(uri, folder))  # the verify runs alone
    client = MlflowClient(uri)
    parent = client.get_run(state["parent_run_id"])
    assert parent.data.metrics["verified_vs_defaults"] == pytest.approx(verified_difference(uri, folder))
    assert parent.data.tags["shipped"] == "candidate" and json.loads(parent.data.tags["verify_seeds"]) == [[1000, 1001]]
    resolved = field_paths(load_config(folder / "best_config.yaml"))  # what was shipped, ready for lsdseg train
    assert resolved["optim.f_lr"] == best["params"]["optim.f_lr"] >= 2e-2
    # the shipped checkpoint is the candidate's run on the first verification seed, and its figure its own
    assert best["checkpoint"]["phase"] == "verify" and best["checkpoint"]["seed"] == 1000
    assert best["checkpoint"]["test_split"] == "synthetic/target_test" and 0 <= best["checkpoint"]["test_miou"] <= 1
    # a first look of half the length: the race continued search trials on the search seed instead of starting over
    runs = children_of(client, state["parent_run_id"], state["experiment_id"])
    assert state["search_iterations"] == 2 and any(r.data.tags.get("continues") == "search" for r in runs)
    assert "search: 2 trials on seed 0 for 2 iterations (a first look" in run.stdout
    # lineage: which files every run read (root, digest of the split's file list), by role
    trial = runs[0]
    for logged in (parent, client.get_run(trial.info.run_id)):
        inputs = {i.tags[0].value: i.dataset for i in logged.inputs.dataset_inputs}
        assert set(inputs) == {"source", "source_val", "target", "target_val", "target_test"}
        assert (inputs["target_val"].name == "synthetic/target_val"
                and inputs["target_val"].digest == state["data"]["target_val"]["digest"][:36])
    # the first screen is the product's: the libraries' start-up chatter is in the sweep's log
    for noise in ("Creating initial MLflow database tables", "Token authentication", "TensorBoard", "Configuration for experiment"):
        assert noise not in run.stdout + run.stderr and noise in (folder / "sweep.log").read_text()
    out = run.stdout
    assert "OPTIMISTIC: these seeds chose the candidate" in out and "held-out seeds [1000, 1001]" in out
    assert "shipped: trial" in out and "on synthetic/target_test" in out and "these figures hold at 6 iterations" in out
    assert out.index("live views:") < out.index("trial-0:")  # the live views are printed as it starts
    assert f"optuna-dashboard sqlite:///{folder}/optuna.db" in out


@pytest.fixture(scope="module")
def unproven(tmp_path_factory, cache_dir):
    """A sweep whose candidate is better on every held-out seed, judged at a level two seeds cannot reach."""
    cwd = tmp_path_factory.mktemp("unproven")
    run = _sweep(cwd, "u1", cache_dir, "--alpha", "0.001")
    return cwd, cwd / "sweeps" / "u1", run


@pytest.mark.slow
def test_without_reliable_evidence_the_defaults_are_shipped_and_the_seeds_it_would_take_are_named(unproven):
    cwd, folder, run = unproven
    best = json.loads((folder / "best.json").read_text())
    assert best["shipped"] == "defaults" and best["candidate"] is not None and not best["looks"][0]["ship"]
    assert best["looks"][0]["evidence"]["mean"] > 0  # better on the held-out seeds, but not reliably at this level
    defaults = json.loads((folder / "sweep.json").read_text())["defaults"]
    assert field_paths(load_config(folder / "best_config.yaml"))["optim.f_lr"] == defaults.get("optim.f_lr", 1e-9) == 1e-9
    assert best["checkpoint"]["phase"] == "verify" and best["checkpoint"]["seed"] == 1000  # the defaults' own run
    assert "no configuration was reliably better than the defaults" in run.stdout
    assert f"lsdseg sweep --resume {folder} --more-seeds" in run.stdout and "80 % power" in run.stdout


@pytest.mark.slow
def test_more_seeds_adds_a_look_judged_on_its_own_and_changes_nothing_recorded(unproven):
    cwd, folder, _ = unproven
    uri = f"sqlite:///{cwd}/mlflow.db"
    state = json.loads((folder / "sweep.json").read_text())
    client = MlflowClient(uri)
    before = {r.info.run_id: (r.data.metrics, r.data.tags["seed"])
              for r in children_of(client, state["parent_run_id"], state["experiment_id"])}
    more = lsdseg("sweep", "--resume", str(folder), "--more-seeds", "2", cwd=cwd)
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    after = {r.info.run_id: (r.data.metrics, r.data.tags["seed"])
             for r in children_of(client, state["parent_run_id"], state["experiment_id"])}
    assert {k: after[k] for k in before} == before and len(after) == len(before) + 4
    looks = json.loads((folder / "sweep.json").read_text())["looks"]
    assert [look["seeds"] for look in looks] == [[1000, 1001], [1002, 1003]] and looks[1]["alpha"] == pytest.approx(0.0005)
    check_invariants(uri, folder, 2, 6, 2)
    best = json.loads((folder / "best.json").read_text())
    assert best["looks"][1]["evidence"]["mean"] == pytest.approx(verified_difference(uri, folder, look=2))
    assert "verification, look 2" in more.stdout and "judged on their own at level 0.0005" in more.stdout


@pytest.mark.slow
def test_population_based_training_races_and_verifies_replayed_schedules(tmp_path, cache_dir):
    """PBT: a population of 4 running at once; trials copy stronger ones' checkpoints with perturbed values
    (MLflow draws each trial's values per evaluation). No search trial is a plain run of its configuration,
    so the race replays each schedule from scratch on every seed, the search seed included."""
    run = lsdseg("sweep", "--name", "p1", "--scheduler", "pbt", "--num-samples", "4", "--concurrency", "4",
                 "--cpus-per-trial", "0.5", "--pbt-interval", "4", "--selection-seeds", "1", "--race-runs", "2",
                 "--verify-seeds", "2", *tiny(cache_dir, iterations=8), cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    uri, folder = f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "sweeps" / "p1"
    outcomes = check_invariants(uri, folder, 4, 8, 2)
    assert len(outcomes["completed"]) == 4  # PBT stops no trial
    client = MlflowClient(uri)
    schedules = [[v.value for v in client.get_metric_history(c.info.run_id, "config/optim.f_lr")] for c in outcomes["completed"]]
    assert all(len(s) == 4 for s in schedules)  # the values in force at each of the 4 evaluations
    assert any(len(set(s)) > 1 for s in schedules)  # some trial took another's weights with new values
    state = json.loads((folder / "sweep.json").read_text())
    later = [r for r in children_of(client, state["parent_run_id"], state["experiment_id"]) if r.data.tags["phase"] != "search"]
    race = [r for r in later if r.data.tags["phase"] == "race"]
    assert race and {r.data.tags["seed"] for r in race} == {"0"}  # the search seed, raced from scratch
    assert "scheduler pbt needs its whole population" in lsdseg("sweep", "--scheduler", "pbt", cwd=tmp_path).stderr


@pytest.mark.slow
def test_a_sweep_without_target_labels_selects_by_a_validator(tmp_path, cache_dir):
    """A real setup: the target's labels are not used. Information maximisation steers the sweep; no run
    logs a target mIoU, so nothing was selected on it, and no test figure is claimed."""
    run = lsdseg("sweep", "--name", "u1", "--num-samples", "2", "--race-runs", "0", "--verify-seeds", "2", "--objective", "im",
                 "--data.target_labels=false", *tiny(cache_dir, iterations=4), cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    state = json.loads((tmp_path / "sweeps" / "u1" / "sweep.json").read_text())
    runs = children_of(MlflowClient(state["tracking_uri"]), state["parent_run_id"], state["experiment_id"])
    assert len(runs) >= 2 and all("val/im" in r.data.metrics and "miou" not in r.data.metrics for r in runs)
    assert "score (mean of the last 3 evaluations of im" in run.stdout and "shipped:" in run.stdout
    best = json.loads((tmp_path / "sweeps" / "u1" / "best.json").read_text())
    assert best["checkpoint"]["test_miou"] is None


@pytest.mark.slow
def test_a_sweep_in_which_no_trial_completes_fails_and_ships_nothing(tmp_path, cache_dir):
    run = lsdseg("sweep", "--name", "f1", "--num-samples", "2", "--max-failures", "0", "--faults.crash_at=1",
                 *tiny(cache_dir, iterations=4), cwd=tmp_path)
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
def test_driver_killed_during_verification_resumes_with_exact_counts(tmp_path, cache_dir):
    (tmp_path / "space.py").write_text(FAST_F)
    args = ["sweep", "--name", "k1", *CLEAR, "--race-runs", "0", *tiny(cache_dir, 24, 4)]
    driver = lsdseg(*args, cwd=tmp_path, wait=False)
    wait_for_metrics(driver, tmp_path / "mlflow.db", phase="verify")
    ray_processes = psutil.Process(driver.pid).children(recursive=True)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    try:
        resumed = lsdseg("sweep", "--resume", str(tmp_path / "sweeps" / "k1"), cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        check_invariants(f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "sweeps" / "k1", 2, 24, 4)
    finally:  # the killed driver's local Ray outlives it; do not leave it running
        _kill_tree(ray_processes)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, cache_dir):
    """A sweep stopped by SIGINT at its first evaluation: (its working folder, the driver's stdout, stderr, status)."""
    cwd = tmp_path_factory.mktemp("interrupted")
    driver = lsdseg("sweep", "--name", "i1", "--num-samples", "3", "--race-runs", "1", "--verify-seeds", "2",
                    *tiny(cache_dir, 24, 4), cwd=cwd, wait=False, split=True)
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

    state = (folder / "sweep.json").read_bytes()
    for bad in (["--seed", "3"], ["--train.iterations=3"], ["--num-samples", "2"], ["--more-seeds", "2"], ["--verify-seeds", "5"]):
        refused = lsdseg("sweep", "--resume", str(folder), *bad, cwd=cwd)
        assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert (folder / "sweep.json").read_bytes() == state  # a refused resume touches nothing

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

    run = lsdseg("sweep", "--name", "w1", "--warm-start", "i1", "--num-samples", "2", "--verify-seeds", "0", *tiny(cache_dir, 24, 4),
                 cwd=cwd)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    second = optuna.load_study(study_name="w1", storage=f"sqlite:///{cwd}/sweeps/w1/optuna.db")
    copied = [t for t in first.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert [t.params for t in second.trials[:len(copied)]] == [t.params for t in copied]
    assert [t.value for t in second.trials[:len(copied)]] == [t.value for t in copied]
    candidate = json.loads((cwd / "sweeps" / "i1" / "best.json").read_text())["candidate"]
    if candidate is not None:  # the earlier sweep's candidate is proposed first
        assert second.trials[len(copied)].params == candidate["params"]
    check_invariants(f"sqlite:///{cwd}/mlflow.db", cwd / "sweeps" / "w1", 2, 24, 4)


@pytest.mark.slow
def test_more_seeds_on_a_sweep_with_no_candidate_is_one_line_and_touches_nothing(tmp_path, cache_dir):
    """Every searched F learns 10^7 times slower than the defaults': the race keeps the default weights,
    nothing is verified, and there is no candidate to add seeds for."""
    (tmp_path / "space.py").write_text("def space(trial):\n    trial.suggest_float('optim.f_lr', 1e-9, 2e-9, log=True)\n")
    run = lsdseg("sweep", "--name", "d1", "--space", "space.py", "--objective", "entropy", "--optim.f_lr=3e-2", "--num-samples", "2",
                 "--verify-seeds", "2", *tiny(cache_dir), cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    folder = tmp_path / "sweeps" / "d1"
    best = json.loads((folder / "best.json").read_text())
    assert best["shipped"] == "defaults" and best["candidate"] is None and "the race kept the default weights" in best["reason"]
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    refused = lsdseg("sweep", "--resume", str(folder), "--more-seeds", "3", cwd=tmp_path)
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 1 and len(lines) == 1 and "no candidate to verify" in lines[0]
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
