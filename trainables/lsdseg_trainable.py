"""The Ray Tune trainables: one training run each (`lsdseg.sweep.schedule.run_schedule`), and nothing more.

`lsdseg_trainable` runs a search trial: sampled values (config field paths) on top of the sweep's base
config. `run_trainable` runs a race or verification run: a configuration, or a Population Based Training
schedule, on another training seed, for the length the point names; a race run that continues a shorter
search trial starts from that trial's last checkpoint. Each evaluation is reported with its checkpoint and a
smoothed score; a restarted trial (or one PBT gave another trial's checkpoint) continues from
`tune.get_checkpoint()`; GPU memory is freed when the trial ends or is stopped.
"""
from __future__ import annotations

import gc
import math
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Optional, Sequence

import ray
import torch
from ray import tune

from lsdseg import checkpoint as ckpt
from lsdseg.objectives import Objective, oriented, smoothed
from lsdseg.runlayout import CHECKPOINT
from lsdseg.schedule import run_schedule
from lsdseg.train import EvalReport

# A Population Based Training member's config: {MEMBER: {field path: value, ..., NUMBER: its Optuna number}}.
# Its values sit under one key, which PBT perturbs in place. NUMBER is no config field (the trainable drops it),
# and true only until the trial's first exploit, which copies the other trial's whole config: it is read when
# the trial starts (its MLflow run keeps it), never later.
MEMBER = "member"
NUMBER = "optuna_trial_number"


def member_values(config: dict[str, Any]) -> dict[str, Any]:
    """A member's config values, without its number."""
    return {k: v for k, v in config[MEMBER].items() if k != NUMBER}


def member_number(config: Optional[dict[str, Any]]) -> Optional[int]:
    return ((config or {}).get(MEMBER) or {}).get(NUMBER)


def result_metrics(ev: EvalReport, objective: Objective, iterations: int, recent: list[float]) -> dict[str, Any]:
    """What a trial reports at iteration `step`: the score (the mean objective of the `recent` evaluations,
    which include this one, turned so that higher is better), `selection` (this evaluation's, by which
    Tune keeps the best checkpoint), the target mIoU, the validators, per-class IoU and mean losses."""
    return {
        "score": oriented(objective, smoothed(recent, len(recent))), "selection": oriented(objective, ev.value(objective)),
        "miou": ev.miou, **ev.also, "step": ev.step, "iterations": iterations, "run_status": "running",
        **{f"val/{name}": v for name, v in ev.validators.items()},
        **{f"iou/{name}": v for name, v in ev.per_class_iou.items()},
        **{f"loss/{name}": v for name, v in ev.losses.items()},
    }


class NoVisibleGPU(RuntimeError):
    """Ray gave the trial a GPU that torch cannot use: training on the CPU instead would bill GPU hours at CPU speed."""


def check_gpu(gpus: float, device: str) -> None:
    """A trial holding a GPU with train.device auto must see it. A driver too old for torch's CUDA build, or a
    node without its GPU runtime, makes `torch.cuda.is_available()` false, and auto would quietly mean cpu."""
    if gpus > 0 and device == "auto" and not torch.cuda.is_available():
        raise NoVisibleGPU(f"Ray gave this trial {gpus:g} GPU but torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA "
                           f"device (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}): update the node's NVIDIA "
                           "driver or image, or pass --gpus-per-trial 0 (or --train.device=cpu) to train on CPUs knowingly")


def lsdseg_trainable(sampled: dict[str, Any], base: dict[str, Any], smoothing: int,
                     changes: Sequence[tuple[int, dict[str, Any]]] = (), start_from: Optional[str] = None) -> None:
    """`changes`: later (step, values) of a schedule that starts with `sampled`; a search trial has none.
    `start_from`: the folder of another trial's checkpoint this run continues (until it has one of its own)."""
    ctx = tune.get_context()
    trial_dir = Path(ctx.get_trial_dir())
    resources = ctx.get_trial_resources().required_resources
    check_gpu(resources.get("GPU", 0), sampled.get("train.device", base["train"]["device"]))
    cpus = max(1, int(resources.get("CPU", 1)))
    checkpoint = tune.get_checkpoint() or (tune.Checkpoint(start_from) if start_from else None)
    # a trial restarted without a checkpoint gets a fresh run folder; one resumed continues its own
    out = trial_dir / f"run{len(list(trial_dir.glob('run*')))}" if checkpoint is None else trial_dir / "run-resumed"
    iterations, objective = sampled.get("train.iterations", base["train"]["iterations"]), base["train"]["objective"]
    last: dict[str, Any] = {"node_id": ray.get_runtime_context().get_node_id()}  # which node ran it, for MLflow
    values: list[float] = []  # the objective at every evaluation

    def report(ev: EvalReport) -> None:
        values.append(ev.value(objective))
        last.update(result_metrics(ev, objective, iterations, values[-smoothing:]))
        tune.report(last, checkpoint=tune.Checkpoint.from_directory(str(Path(ev.checkpoint).parent)))

    try:
        with checkpoint.as_directory() if checkpoint is not None else nullcontext() as folder:
            resume = None if folder is None else Path(folder) / CHECKPOINT
            if resume is not None:  # the score spans the restart
                values.extend(EvalReport(**h).value(objective) for h in ckpt.load(resume)["history"])
            result = run_schedule(base, [(0, sampled), *changes], {"train.out_dir": str(out), "train.threads": cpus}, report, resume)
        if result.status == "diverged":  # ends the trial with its reason; the searcher files it as FAIL
            tune.report({"miou": last.get("miou", 0.0), "score": last.get("score", -math.inf), "iterations": iterations,
                         **last, "step": result.step, "run_status": "diverged", "message": result.message})
    finally:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def run_trainable(config: dict[str, Any], base: dict[str, Any], smoothing: int) -> None:
    """A race or verification run: `config["point"]` holds the configuration's values (and any later changes
    of a PBT schedule), the training seed and the run's length (lsdseg.sweep.phases.point)."""
    point = config["point"]
    fixed = {"train.seed": point["seed"], "train.iterations": point["iterations"]}
    changes = [(step, {**values, **fixed}) for step, values in point["changes"]]
    lsdseg_trainable({**point["params"], **fixed}, base, smoothing, changes, point.get("resume"))


def pbt_trainable(config: dict[str, Any], base: dict[str, Any], smoothing: int) -> None:
    """A member of a PBT population: its values (which PBT perturbs in place) sit under one key."""
    lsdseg_trainable(member_values(config), base, smoothing)
