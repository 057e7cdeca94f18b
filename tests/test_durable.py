"""A sweep whose state lives off the machines that run it: MLflow tracking and registry in PostgreSQL, the
Optuna study in a PostgreSQL database of its own, the sweep folder and the trials' checkpoints in a folder
every node mounts (a local folder shared by the nodes of a real two-node Ray on 127.0.0.1, standing in for
NFS/EFS). `ray down` is played by killing the driver and every node and deleting their local files; a new
cluster and a brand-new driver, given only the URIs and the folder, must finish the sweep and lose nothing.

The passwords reach libpq through PGPASSWORD only: no URI carries one.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import time

import pytest
from cli import invoke
from localcluster import LocalCluster
from mlflow.tracking import MlflowClient
from postgres import Postgres, server_bin
from sweeps import check_invariants, lsdseg, tiny

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pg():
    if server_bin() is None and not os.environ.get("LSDSEG_REQUIRE_POSTGRES"):
        pytest.skip("no PostgreSQL server installed (initdb): apt install postgresql")
    server = Postgres()
    saved = os.environ.get("PGPASSWORD")
    os.environ["PGPASSWORD"] = server.password  # this process's clients too (MLflow, Optuna, SQLAlchemy)
    yield server
    server.stop()
    if saved is None:
        os.environ.pop("PGPASSWORD")
    else:
        os.environ["PGPASSWORD"] = saved


def lines(run):
    return run.stderr.strip().splitlines()


def one_line(run, message, cwd):
    assert run.returncode == 1 and len(lines(run)) == 1 and message in run.stderr, run.stderr[-2000:]
    assert not (cwd / "sweeps").exists()  # found before anything was written


@pytest.fixture(scope="module")
def used(pg):
    """Databases where MLflow and Optuna have made their tables."""
    import optuna

    pg.create("mlflow_used")
    MlflowClient(pg.uri("mlflow_used")).search_experiments()
    pg.create("optuna_used")
    optuna.create_study(storage=pg.uri("optuna_used"), study_name="another")
    return pg


@pytest.mark.parametrize("study, tracking, message", [
    ("<optuna>", "<optuna>", "name the same database"),
    ("<password>", None, "--study-uri carries a password"),
    ("<nosuch>", None, 'database "nosuch" does not exist'),
    ("<mlflow_used>", None, "holds MLflow's tables"),
    ("<optuna>", "<optuna_used>", "holds an Optuna study's tables"),
    ("postgresql://lsdseg@127.0.0.1:1/optuna", None, "Connection refused"),
    ("mssql://nobody@127.0.0.1:1/x", None, "database driver"),
    ("http://127.0.0.1:1/x", None, "is not a database URL"),
])
def test_bad_study_storage_is_one_line_before_anything_is_written(used, tmp_path, study, tracking, message):
    def uri(text):
        if text == "<password>":
            return used.uri("optuna").replace("lsdseg@", f"lsdseg:{used.password}@")
        return used.uri(text.strip("<>")) if text.startswith("<") else text
    args = ["--study-uri", uri(study)] + (["--tracking-uri", uri(tracking)] if tracking else [])
    run = invoke("sweep", *args, cwd=tmp_path)  # in this process: every check comes before Ray starts
    one_line(run, message, tmp_path)
    assert used.password not in run.stderr


def test_a_study_database_of_another_optuna_schema_is_refused_and_left_as_it_was(pg, tmp_path):
    import optuna
    import sqlalchemy

    pg.create("optuna_old")
    optuna.create_study(storage=pg.uri("optuna_old"), study_name="someone-elses")
    engine = sqlalchemy.create_engine(pg.uri("optuna_old"))
    with engine.begin() as db:  # as an Optuna of another release would have left it
        db.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = 'v1.3.0.a'"))
    run = invoke("sweep", "--study-uri", pg.uri("optuna_old"), cwd=tmp_path)
    one_line(run, "optuna storage upgrade", tmp_path)
    with engine.connect() as db:
        assert db.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalar() == "v1.3.0.a"
        assert db.execute(sqlalchemy.text("SELECT count(*) FROM studies")).scalar() == 1


def test_a_tracking_uri_with_a_password_is_refused(pg, tmp_path):
    run = invoke("sweep", "--tracking-uri", pg.uri("mlflow").replace("lsdseg@", "lsdseg:hunter2@"), cwd=tmp_path)
    one_line(run, "--tracking-uri carries a password", tmp_path)
    assert "hunter2" not in run.stderr


@pytest.fixture
def clusters():
    """Two-node clusters on 127.0.0.1, each stopped at the end whatever happened (a failed assertion included)."""
    started: list[LocalCluster] = []

    def start(workdir):
        nodes = LocalCluster(workdir)
        started.append(nodes)
        nodes.start_head(cpus=1)
        nodes.add_worker(cpus=1)
        return nodes
    yield start
    for nodes in started:
        nodes.stop()


def _ray_down(cluster, driver, *local):
    """What `ray down` does to a sweep: the driver and every node gone, with every file on their disks."""
    if driver is not None and driver.poll() is None:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    cluster.stop()
    for folder in (cluster.workdir, *local):
        shutil.rmtree(folder)


@pytest.mark.slow
def test_ray_down_and_up_loses_no_run_trial_checkpoint_registry_entry_or_report(pg, clusters, tmp_path_factory, cache_dir):
    shared = tmp_path_factory.mktemp("shared")  # what every node mounts: sweep folders and checkpoints
    uris = {"MLFLOW_TRACKING_URI": pg.uri("mlflow"), "LSDSEG_STUDY_URI": pg.uri("optuna"),
            "LSDSEG_ROOT": str(shared / "sweeps"), "LSDSEG_STORAGE": str(shared / "checkpoints")}
    first = clusters(tmp_path_factory.mktemp("cluster1"))
    driver_home = tmp_path_factory.mktemp("driver1")
    env = {**first.env, **pg.env, **uris}
    args = ["sweep", "--name", "durable", "--address", first.address, "--num-samples", "4", "--concurrency", "2",
            "--race-runs", "1", "--verify-seeds", "1", "--references", *tiny(cache_dir, 40, 10), "--train.threads=1"]
    driver = lsdseg(*args, cwd=driver_home, wait=False, env=env)
    client = MlflowClient(pg.uri("mlflow"))
    folder = shared / "sweeps" / "durable"

    def evaluations():
        experiment = client.get_experiment_by_name("lsdseg")
        runs = client.search_runs([experiment.experiment_id], "tags.phase = 'search'") if experiment else []
        return [r for r in runs if "miou" in r.data.metrics]

    deadline = time.monotonic() + 300
    while not evaluations() and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(1)
    assert driver.poll() is None, driver.stdout.read()[-3000:]
    # a second driver on the running sweep: one line, and the first goes on
    second = lsdseg("sweep", "--resume", str(folder), cwd=driver_home, env=env)
    assert second.returncode == 1 and len(lines(second)) == 1 and "is being driven by pid" in second.stderr, second.stderr
    assert driver.poll() is None
    in_flight = {r.info.run_id: max(m.step for m in client.get_metric_history(r.info.run_id, "miou")) for r in evaluations()}
    _ray_down(first, driver, driver_home)

    second_cluster = clusters(tmp_path_factory.mktemp("cluster2"))
    fresh = tmp_path_factory.mktemp("driver2")  # a brand-new driver: the URIs and the folder, nothing else
    env = {**second_cluster.env, **pg.env, **uris}
    resumed = lsdseg("sweep", "--resume", str(folder), "--address", second_cluster.address, cwd=fresh, env=env)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    outcomes = check_invariants(pg.uri("mlflow"), folder, 4, 40, 10)
    assert len(outcomes["completed"]) == 4
    for run_id, step in in_flight.items():  # restarted from its last checkpoint: no evaluation logged twice
        history = [m.step for m in client.get_metric_history(run_id, "miou")]
        assert len(history) == len(set(history)) and step in history
    state = json.loads((folder / "sweep.json").read_text())
    assert state["status"] == "finished" and "source_only" in state["references"]
    assert pg.password not in (folder / "sweep.json").read_text() + (folder / "sweep.log").read_text()
    assert not {"mlflow.db", "mlruns", "sweeps"} & {p.name for p in fresh.iterdir()}  # nothing of the sweep on the driver's disk

    report = lsdseg("report", "durable", cwd=fresh, env=env)
    assert report.returncode == 0, report.stderr[-3000:]
    exported = lsdseg("export", "durable", "--out", str(shared / "best.yaml"), "--register", "lsdseg-durable", cwd=fresh, env=env)
    assert exported.returncode == 0, exported.stderr[-3000:]
    _ray_down(second_cluster, None, fresh)

    # after the second `ray down`: a new driver lists, reports and finds the registered model
    third = tmp_path_factory.mktemp("driver3")
    listed = lsdseg("sweeps", cwd=third, env={**pg.env, **uris})
    assert listed.returncode == 0 and "durable" in listed.stdout and "4/4" in listed.stdout, listed.stdout + listed.stderr
    again = lsdseg("report", "durable", cwd=third, env={**pg.env, **uris})
    assert again.returncode == 0, again.stderr[-3000:]
    assert (folder / "report" / "report.html").is_file()
    assert list((shared / "sweeps" / "mlflow-artifacts").rglob("report.html"))  # MLflow's copy: on shared storage too
    import mlflow

    mlflow.set_tracking_uri(pg.uri("mlflow"))
    model = mlflow.artifacts.download_artifacts("models:/lsdseg-durable/1", dst_path=str(third / "model"))
    assert any(p.name == "MLmodel" for p in (third / "model").rglob("*")), model  # its files, not only its row
