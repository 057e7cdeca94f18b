"""MLflow for sweeps: the experiment and one parent run per sweep are made on the driver before any
trial starts; each trial is one nested run, written only by the driver through a Tune callback.

One writer avoids the known races (experiments created by racing workers, runs duplicated per worker,
tracking URIs lost in trial processes). A trial's run is found again by its Ray trial id, so a resumed
sweep or a retried trial continues its own run: no duplicates, none left RUNNING.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Optional

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray.tune import Callback

from lsdseg.sweep.errors import SweepError
from lsdseg.sweep.searcher import OptunaSearcher, trial_outcome
from lsdseg.sweep.stores import check_tracking_database, no_password
from lsdseg.trainables.lsdseg_trainable import MEMBER, member_number, member_values


def default_tracking_uri() -> str:
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def dataset_inputs(digests: dict[str, dict[str, str]]) -> list[DatasetInput]:
    """MLflow dataset inputs (`lsdseg.data.split_digests`): what a run trained and was judged on."""
    return [DatasetInput(Dataset(name=d["name"], digest=d["digest"][:36], source_type="local", source=d["root"],
                                 profile=f'{{"images": {d["images"]}}}'),
                         tags=[InputTag("mlflow.data.context", role)]) for role, d in digests.items()]


def check_store(uri: str, timeout_s: int = 10, existing: bool = False) -> None:
    """Reach the tracking store before a sweep writes anything, so that a mistyped or unreachable URI costs a
    line, not a sweep folder that can be neither reused nor resumed. A server gets one request without
    MLflow's retries (which back off for minutes); an sqlite file needs a folder to live in."""
    no_password(uri, "--tracking-uri")
    check_tracking_database(uri)  # a database server: reached once, without MLflow's minutes of retries
    if uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).parent
        if not folder.is_dir():
            raise SweepError(f"MLflow store {uri}: folder {folder} does not exist: create it, or pass another --tracking-uri")
        if existing and not Path(uri.removeprefix("sqlite:///")).is_file():  # MLflow would make an empty one
            raise SweepError(f"the sweep's MLflow store {uri} is gone: its runs live there; restore the file, then resume")
        return
    names = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update({names[0]: "0", names[1]: str(timeout_s)})
    quiet = logging.getLogger("mlflow.store.db.utils")  # "Creating initial MLflow database tables...": a line too many
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        MlflowClient(uri).search_experiments(max_results=1)
    except Exception as err:  # any store's failure (unknown scheme, refused connection, timeout) is the user's to fix
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise SweepError(f"MLflow store {uri} cannot be reached ({reason}): check --tracking-uri, or start the server") from None
    finally:
        quiet.setLevel(level)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v


def find_or_create_experiment(client: MlflowClient, name: str, artifacts: Optional[str] = None) -> str:
    """The MLflow experiment `name`, created here (on the driver) if missing, with its artifacts at `artifacts`
    (None: the store's default)."""
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name, artifact_location=artifacts)


def start_parent(client: MlflowClient, experiment: str, sweep: str, tags: dict[str, str],
                 artifacts: Optional[str] = None) -> tuple[str, str]:
    """(experiment id, parent run id)."""
    experiment_id = find_or_create_experiment(client, experiment, artifacts)
    run = client.create_run(experiment_id, run_name=sweep, tags={"sweep": sweep, "role": "sweep", **tags})
    return experiment_id, run.info.run_id


def _param_value(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)  # exact: equal to what Optuna suggested


class MLflowTrials(Callback):
    """Tune callback: one nested MLflow run per trial (params, metric history, outcome, traceback)."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, experiment: str,
                 searcher: Optional[OptunaSearcher], fixed_params: dict[str, Any], seed: int, iterations: int,
                 varying: tuple[str, ...] = (), data: Optional[dict[str, dict[str, str]]] = None):
        self.tracking_uri, self.experiment_id, self.parent_run_id = tracking_uri, experiment_id, parent_run_id
        # the Tune experiment it logs (search, select, look-<k>); each run's phase tag says what the run was for
        self.experiment, self.searcher, self.fixed_params, self.seed, self.iterations = experiment, searcher, fixed_params, seed, iterations
        # values a trial's config may change mid-run (PBT): MLflow params are write-once, so these also go
        # in as metrics `config/<field>` at every evaluation, which draws each trial's schedule
        self.varying = varying
        self.data = data or {}  # lsdseg.data.split_digests: each run's dataset inputs
        self._client: Optional[MlflowClient] = None
        self._runs: dict[str, str] = {}
        self._nodes: dict[str, list[str]] = {}
        self._logged: dict[str, int] = {}  # the last iteration logged per trial

    def __getstate__(self) -> dict:  # Tune pickles callbacks with the experiment; clients do not travel
        return {**self.__dict__, "_client": None, "_runs": {}, "_nodes": {}, "_logged": {}}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def run_id(self, trial) -> str:
        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        query = f"tags.mlflow.parentRunId = '{self.parent_run_id}' and tags.ray_trial_id = '{trial.trial_id}'"
        found = self.client.search_runs([self.experiment_id], filter_string=query, max_results=1)
        if found:  # a resumed sweep or a retried trial continues its own run
            run_id = found[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            history = self.client.get_metric_history(run_id, "miou")
            self._logged[trial.trial_id] = max((m.step for m in history), default=0)
        else:
            name, tags, params = self._describe(trial)
            tags |= {"mlflow.parentRunId": self.parent_run_id, "ray_trial_id": trial.trial_id, "experiment": self.experiment,
                     "status": "running"}
            run_id = self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id
            params = {**self.fixed_params, **params}
            self.client.log_batch(run_id, params=[Param(k, _param_value(v)) for k, v in sorted(params.items())])
            if self.data:
                self.client.log_inputs(run_id, datasets=dataset_inputs(self.data))
        self._runs[trial.trial_id] = run_id
        return run_id

    def _describe(self, trial) -> tuple[str, dict[str, str], dict[str, Any]]:
        """(run name, tags, params) of a new run. A race or verification run names its configuration and seed."""
        if self.experiment != "search":
            point = trial.config["point"]
            tags = {"seed": str(point["seed"]), "phase": point["phase"], "iterations": str(point["iterations"])}
            if point["changes"]:  # a replayed PBT schedule: its later values, as [step, values] pairs
                tags["schedule_changes"] = json.dumps(point["changes"])
            if point["number"] is not None:
                tags["optuna_trial_number"] = str(point["number"])
            if point["defaults"]:
                tags["defaults"] = "true"
            if point["look"] is not None:
                tags["look"] = str(point["look"])
            if point.get("resume"):  # it continues its configuration's shorter search trial on the same seed
                tags["continues"] = "search"
            label = "defaults" if point["defaults"] else f"trial-{point['number']}"
            params = {**point["params"], "train.seed": point["seed"], "train.iterations": point["iterations"]}
            return f"{point['phase']}-{label}-seed-{point['seed']}", tags, params
        pbt = MEMBER in trial.config
        number = member_number(trial.config) if pbt else self.searcher.optuna_number(trial.trial_id) if self.searcher else None
        tags = {"seed": str(self.seed), "phase": "search", "iterations": str(self.iterations)}
        tags |= {} if number is None else {"optuna_trial_number": str(number)}
        return (str(trial) if number is None else f"trial-{number}"), tags, member_values(trial.config) if pbt else dict(trial.config)

    def run_name(self, trial) -> str:
        """What the trial is called everywhere: trial-<Optuna number>, or <phase>-trial-<n>-seed-<s>."""
        return self._describe(trial)[0]

    def on_trial_start(self, iteration, trials, trial, **info):
        self.run_id(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "step" not in result or result.get("run_status") != "running":
            return  # a diverged trial's last word is its status and message (tags), not a new evaluation
        now, step = int(time.time() * 1000), int(result["step"])
        run_id = self.run_id(trial)
        if step <= self._logged.get(trial.trial_id, 0):
            return  # redone after a restart from an older checkpoint than the driver had logged: logged once
        self._logged[trial.trial_id] = step
        metrics = [Metric(k, float(v), now, step) for k, v in result.items()
                   if (k in ("miou", "score") or k.startswith(("val/", "iou/", "loss/")))
                      and isinstance(v, (int, float)) and math.isfinite(v)]
        if self.varying:
            values = member_values(trial.config)
            metrics += [Metric(f"config/{k}", float(values[k]), now, step) for k in self.varying if k in values]
        self.client.log_batch(run_id, metrics=metrics, tags=self._node_tags(trial, result))  # one call per evaluation

    def _node_tags(self, trial, result: dict) -> list[RunTag]:
        """Where the trial runs; `ray_nodes` lists every node it ran on, so a restart after a node loss shows."""
        node = result.get("node_id")
        if node is None:
            return []
        if trial.trial_id not in self._nodes:
            self._nodes[trial.trial_id] = self._logged_nodes(trial)
        seen = self._nodes[trial.trial_id]
        if seen and seen[-1] == node:
            return []
        seen.append(node)
        return [RunTag("ray_node_id", node), RunTag("node_ip", str(result.get("node_ip"))), RunTag("ray_nodes", ",".join(seen))]

    def _logged_nodes(self, trial) -> list[str]:
        """The nodes already on the trial's run, as a resumed driver finds them."""
        tag = self.client.get_run(self.run_id(trial)).data.tags.get("ray_nodes")
        return tag.split(",") if tag else []

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, trial_outcome(trial.last_result, error=False))

    def on_trial_error(self, iteration, trials, trial, **info):
        run_id = self.run_id(trial)
        # Tune writes error.txt in the driver's staging folder first and uploads it to the storage later
        if trial.error_file and Path(trial.error_file).is_file():
            self.client.log_text(run_id, Path(trial.error_file).read_text(), "error.txt")
        self._finish(trial, "errored")

    def _finish(self, trial, outcome: str) -> None:
        run_id = self.run_id(trial)
        tags = [RunTag("status", outcome)]
        message = (trial.last_result or {}).get("message")
        if message:
            tags.append(RunTag("message", str(message)))
        self.client.log_batch(run_id, tags=tags)
        self.client.set_terminated(run_id, "FAILED" if outcome == "errored" else "FINISHED")


def fail_unfinished(client: MlflowClient, experiment_id: str, parent_run_id: str) -> int:
    """At the end of a sweep every trial has ended: a child run still RUNNING belongs to a trial Tune ended
    with an error it told no callback about (e.g. an actor it could not restart). Mark it FAILED (tag
    status=errored), as Optuna was told; returns how many."""
    query = f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'RUNNING'"
    runs = client.search_runs([experiment_id], filter_string=query, max_results=10_000)
    for run in runs:
        client.set_tag(run.info.run_id, "status", "errored")
        client.set_terminated(run.info.run_id, "FAILED")
    return len(runs)


def end_unfinished(client: MlflowClient, experiment_id: str, parent_run_id: str) -> int:
    """Mark every child run still RUNNING as KILLED (tag status=interrupted), and the parent too; returns
    how many children. Run when a sweep is interrupted: nothing is left looking alive in MLflow's UI, and a
    resume sets the runs it continues back to RUNNING."""
    query = f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'RUNNING'"
    runs = client.search_runs([experiment_id], filter_string=query, max_results=10_000)
    for run in runs:
        client.set_tag(run.info.run_id, "status", "interrupted")
        client.set_terminated(run.info.run_id, "KILLED")
    client.set_terminated(parent_run_id, "KILLED")
    return len(runs)
