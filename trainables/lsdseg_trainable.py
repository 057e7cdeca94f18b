"""The Ray Tune trainables: one `run_training` call each, and nothing more.

`lsdseg_trainable` runs a search trial: sampled values (config field paths) on top of the sweep's base
config. `confirm_trainable` runs a confirmation run: a chosen configuration on another training seed.
Each evaluation is reported with its checkpoint and a smoothed score; a restarted trial continues from
`tune.get_checkpoint()`; GPU memory is freed when the trial ends or is stopped.
"""
from __future__ import annotations

import gc
import os
import statistics
from pathlib import Path
from typing import Any, Optional

import ray
import torch
from ray import tune

from lsdseg import checkpoint as ckpt
from lsdseg.config_io import with_values
from lsdseg.train import EvalReport, run_training


def result_metrics(ev: EvalReport, iterations: int, recent: list[float]) -> dict[str, Any]:
    """What a trial reports at iteration `step`: the target mIoU, the score (mean mIoU of the `recent`
    evaluations, which include this one), per-class IoU and mean losses."""
    return {
        "miou": ev.miou, "score": statistics.fmean(recent), "step": ev.step, "iterations": iterations, "run_status": "running",
        **{f"iou/{name}": v for name, v in ev.per_class_iou.items()},
        **{f"loss/{name}": v for name, v in ev.losses.items()},
    }


def lsdseg_trainable(sampled: dict[str, Any], base: dict[str, Any], smoothing: int, tracking_uri: Optional[str] = None) -> None:
    if tracking_uri:  # the driver logs every trial; this only keeps any MLflow call in a trial on the same store
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    ctx = tune.get_context()
    trial_dir = Path(ctx.get_trial_dir())
    cpus = max(1, int(ctx.get_trial_resources().required_resources.get("CPU", 1)))
    checkpoint = tune.get_checkpoint()
    # a trial restarted without a checkpoint gets a fresh run folder; one resumed continues its own
    out = trial_dir / f"run{len(list(trial_dir.glob('run*')))}" if checkpoint is None else trial_dir / "run-resumed"
    cfg = with_values(base, {**sampled, "train.out_dir": str(out), "train.threads": cpus})
    last: dict[str, Any] = {"node_id": ray.get_runtime_context().get_node_id()}  # which node ran it, for MLflow
    mious: list[float] = []

    def report(ev: EvalReport) -> None:
        mious.append(ev.miou)
        last.update(result_metrics(ev, cfg.train.iterations, mious[-smoothing:]))
        tune.report(last, checkpoint=tune.Checkpoint.from_directory(str(Path(ev.checkpoint).parent)))

    try:
        if checkpoint is None:
            result = run_training(cfg, report=report)
        else:
            with checkpoint.as_directory() as folder:
                resume = Path(folder) / "checkpoint.pt"
                mious.extend(h["miou"] for h in ckpt.load(resume)["history"])  # the score spans the restart
                result = run_training(cfg, report=report, resume=resume)
        if result.status == "diverged":  # ends the trial with its reason; the searcher files it as FAIL
            tune.report({"miou": last.get("miou", 0.0), "score": last.get("score", 0.0), "iterations": cfg.train.iterations,
                         **last, "step": result.step, "run_status": "diverged", "message": result.message})
    finally:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def confirm_trainable(config: dict[str, Any], base: dict[str, Any], smoothing: int, tracking_uri: Optional[str] = None) -> None:
    """A confirmation run: `config["point"]` holds the configuration's values and the training seed."""
    point = config["point"]
    lsdseg_trainable({**point["params"], "train.seed": point["seed"]}, base, smoothing, tracking_uri)
