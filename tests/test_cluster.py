"""Fault tolerance on a real two-node Ray cluster (`ray start` processes on 127.0.0.1, token auth on)
with a real `mlflow server`, and a shared folder standing in for S3/NFS as the sweeps' storage.

Node loss, a diverging trial and a crashing trial: each sweep must end with every trial accounted for, once,
in MLflow, Optuna and Tune (tests/sweeps.py: check_invariants). The loss of the driver and of every node
(`ray down`), raced and verified on the cluster, is tests/test_durable.py's.
"""
from __future__ import annotations

import time

import pytest
from localcluster import LocalCluster, MLflowServer
from mlflow.tracking import MlflowClient
from sweeps import check_invariants, lsdseg, tiny

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    mlflow = MLflowServer(tmp_path_factory.mktemp("mlflow-server"))
    yield mlflow
    mlflow.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    nodes = LocalCluster(tmp_path_factory.mktemp("ray-cluster"))
    try:
        nodes.start_head(cpus=1)
        nodes.add_worker(cpus=1)
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture
def two_nodes(cluster):
    """The module's cluster with a live worker (an earlier test may have killed it)."""
    if len(cluster.live()) < 2:
        cluster.wait_for_nodes(len(cluster.live()))  # Ray has seen the dead node go
        cluster.add_worker(cpus=1)
    return cluster


def sweep_args(name, cluster, server, storage, cache_dir, iterations, eval_every, *extra):
    return ["sweep", "--name", name, "--address", cluster.address, "--storage", str(storage), "--tracking-uri", server.uri,
            "--concurrency", "2", "--verify-seeds", "0", *extra, *tiny(cache_dir, iterations, eval_every), "--train.threads=1"]


def wait_for(predicate, driver, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and driver.poll() is None:
        found = predicate()
        if found:
            return found
        time.sleep(0.5)
    output = driver.stdout.read() if driver.poll() is not None else ""
    raise AssertionError(f"sweep ended or timed out before the event: {output[-3000:]}")


def runs_on(client, sweep, node_id):
    """Trial runs of `sweep` that reported at least one evaluation from node `node_id`."""
    experiment = client.get_experiment_by_name("lsdseg")
    if experiment is None:
        return []
    query = f"tags.ray_node_id = '{node_id}' and tags.mlflow.parentRunId != ''"
    runs = client.search_runs([experiment.experiment_id], filter_string=query, max_results=100)
    parents = {r.info.run_id for r in client.search_runs([experiment.experiment_id], filter_string=f"tags.sweep = '{sweep}'")}
    return [r for r in runs if r.data.tags.get("mlflow.parentRunId") in parents and "miou" in r.data.metrics]


def test_mlflow_server_listens_on_loopback_only(server):
    assert server.listening() == {"127.0.0.1"}


def test_node_loss_restarts_its_trials_from_checkpoints_on_the_surviving_node(two_nodes, server, tmp_path, cache_dir):
    client = MlflowClient(server.uri)
    worker = two_nodes.live()[-1]
    worker_id = worker.node_id
    driver = lsdseg(*sweep_args("nodeloss", two_nodes, server, tmp_path / "shared", cache_dir, 120, 10,
                                "--num-samples", "3", "--scheduler", "none"), cwd=tmp_path, wait=False, env=two_nodes.env)
    held = wait_for(lambda: runs_on(client, "nodeloss", worker_id), driver)
    worker.kill()
    output, _ = driver.communicate(timeout=600)
    assert driver.returncode == 0, output[-3000:]

    outcomes = check_invariants(server.uri, tmp_path / "sweeps" / "nodeloss", 3, 120, 10)
    assert list(outcomes) == ["completed"]  # no trial lost
    ran_on = {n for c in outcomes["completed"] for n in c.data.tags["ray_nodes"].split(",")}
    assert ran_on == {two_nodes.nodes[0].node_id, worker_id}  # trials of both nodes logged to the one server
    moved = client.get_run(held[0].info.run_id)
    nodes = moved.data.tags["ray_nodes"].split(",")
    assert nodes[0] == worker_id and len(nodes) == 2 and moved.data.tags["status"] == "completed"
    # Gap-free (check_invariants) and no evaluation twice: it went on from the checkpoint of its last
    # report; a restart from scratch or from an older checkpoint would log some steps again.
    history = client.get_metric_history(moved.info.run_id, "miou")
    assert len(history) == len({m.step for m in history})
    assert any((tmp_path / "shared" / "nodeloss").glob("*/checkpoint_*/checkpoint.pt"))  # checkpoints in shared storage


def test_diverging_and_crashing_trials_end_with_their_reason_and_the_sweep_goes_on(two_nodes, server, tmp_path, cache_dir):
    # Trial 1 turns NaN and trial 2 raises, both at iteration 12 (between evaluations at 10 and 20).
    (tmp_path / "faults.py").write_text(
        "def space(trial):\n"
        "    trial.suggest_float('loss.f_adv', 0.05, 0.2)\n"
        "    trial.suggest_int('faults.explode_at', *((12, 12) if trial.number == 1 else (0, 0)))\n"
        "    trial.suggest_int('faults.crash_at', *((12, 12) if trial.number == 2 else (0, 0)))\n")
    args = sweep_args("faults", two_nodes, server, tmp_path / "shared", cache_dir, 30, 10, "--num-samples", "4",
                      "--scheduler", "none", "--first-look", "1", "--space", "faults.py", "--max-failures", "0")
    run = lsdseg(*args, cwd=tmp_path, env=two_nodes.env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    outcomes = check_invariants(server.uri, tmp_path / "sweeps" / "faults", 4, 30, 10)
    assert sorted(outcomes) == ["completed", "diverged", "errored"] and len(outcomes["completed"]) == 2

    client = MlflowClient(server.uri)
    (diverged,) = outcomes["diverged"]
    assert "at iteration 12" in diverged.data.tags["message"] and diverged.data.tags["optuna_trial_number"] == "1"
    assert [m.step for m in client.get_metric_history(diverged.info.run_id, "miou")] == [10]  # stopped before the next evaluation

    (crashed,) = outcomes["errored"]
    assert crashed.info.status == "FAILED" and crashed.data.tags["optuna_trial_number"] == "2"
    traceback = open(client.download_artifacts(crashed.info.run_id, "error.txt", str(tmp_path))).read()
    assert "lsdseg.train.InjectedCrash: faults.crash_at=12" in traceback and 'lsdseg/train.py", line' in traceback
    on_disk = list((tmp_path / "shared" / "faults").glob("*/error.txt"))
    assert len(on_disk) == 1 and "InjectedCrash" in on_disk[0].read_text()
