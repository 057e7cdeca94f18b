"""`lsdseg train` in MLflow: one run per training run when a tracking URI is given (--tracking-uri) or set
(MLFLOW_TRACKING_URI), in the experiment MLFLOW_EXPERIMENT_NAME names (else "lsdseg"), as MLflow's own
tools expect. Params are every config field; each evaluation logs target mIoU, the objective, the
validators and the loss terms at its iteration; the run ends FINISHED, or FAILED for a diverged run.
"""
from __future__ import annotations

import math
import os
import time
from typing import Optional

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from lsdseg.config import Config
from lsdseg.config_io import field_paths, to_dict
from lsdseg.runinfo import git_sha
from lsdseg.sweep.tracking import check_store, find_or_create_experiment
from lsdseg.train import EvalReport, RunResult

EXPERIMENT = "lsdseg"


class TrainRun:
    """The MLflow run of one `lsdseg train`: opened before training starts (a bad store costs one line and no
    training), written at each evaluation, closed with the run's outcome."""

    def __init__(self, uri: str, cfg: Config):
        check_store(uri)
        self.client = MlflowClient(uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
        experiment = find_or_create_experiment(self.client, name)
        sha = git_sha()
        tags = {"role": "train", "git_sha": sha, "mlflow.source.git.commit": sha, "mode": cfg.train.mode,
                "seed": str(cfg.train.seed), "objective": cfg.train.objective}
        self.run_id = self.client.create_run(experiment, tags=tags).info.run_id
        values = field_paths(cfg)
        self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in sorted(values.items())])
        self.client.log_dict(self.run_id, to_dict(cfg), "config.yaml")

    def report(self, ev: EvalReport) -> None:
        figures = {"miou": ev.miou, "objective": ev.objective, **ev.validators, **ev.also,
                   **{f"loss/{k}": v for k, v in ev.losses.items()}}
        stamp = int(1000 * time.time())
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), stamp, ev.step) for k, v in figures.items()
                                                    if v is not None and math.isfinite(v)])

    def end(self, result: Optional[RunResult]) -> None:
        """Close the run: FINISHED for a completed one, FAILED for a diverged one, KILLED when interrupted."""
        if result is None:
            self.client.set_terminated(self.run_id, "KILLED")
            return
        tags = [RunTag("status", result.status), RunTag("run_folder", result.out_dir)]
        if result.message:
            tags.append(RunTag("message", result.message[:5000]))
        self.client.log_batch(self.run_id, tags=tags)
        self.client.set_terminated(self.run_id, "FINISHED" if result.status == "completed" else "FAILED")
