"""`run_training(cfg, report=...)`: one LSD-seg, source-only or target-oracle run in plain PyTorch.

No Ray, MLflow or Optuna here: a sweep wraps this function, and `report` is its only hook. Every
`train.eval_every` iterations (and at the end) the target and source validation splits are evaluated
(target mIoU where target labels are used, and the label-free validators), a checkpoint is written, and
`report` receives all of it with the mean losses and the checkpoint's path. `train.objective` selects
a checkpoint (checkpoints/selected/). A NaN or inf loss ends the run with status "diverged" instead of a crash.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Literal, Optional

import torch
from tqdm import tqdm

from lsdseg import checkpoint
from lsdseg.config import Config
from lsdseg.config_io import dump_config, to_dict
from lsdseg.data import also_reported, prepare, protocol_classes, train_dataset, val_dataset, val_loader
from lsdseg.data.sampling import endless_batches
from lsdseg.device import autocast_for, resolve_device
from lsdseg.evaluate import validate
from lsdseg.interrupted import Interrupted
from lsdseg.models import build_nets
from lsdseg.objectives import Objective, oriented
from lsdseg.optim import apply_hparams, build_optimizers, set_f_lr
from lsdseg.runinfo import run_info
from lsdseg.runlayout import RunLayout
from lsdseg.step import train_step


@dataclass(frozen=True)
class EvalReport:
    step: int
    miou: float  # target mIoU; NaN where the target labels are not used
    per_class_iou: dict[str, float]
    losses: dict[str, float]  # mean of each loss term since the previous evaluation
    checkpoint: Optional[str]  # path of the checkpoint written at this evaluation
    validators: dict[str, float] = field(default_factory=dict)  # the label-free validators (lsdseg.validators)
    objective: float = math.nan  # train.objective's value here (target mIoU or a validator), as measured
    also: dict[str, float] = field(default_factory=dict)  # data.ALSO_REPORTED figures, e.g. SYNTHIA's miou13

    def value(self, objective: Objective) -> float:
        return self.miou if objective == "target_miou" else self.validators.get(objective, math.nan)


@dataclass(frozen=True)
class RunResult:
    status: Literal["completed", "diverged"]
    step: int
    miou: float  # at the last evaluation (NaN if none ran)
    best_miou: float  # the best evaluation seen: an oracle figure (it peeks at target labels), never a result
    out_dir: str
    message: str
    history: list[EvalReport] = field(default_factory=list)
    selected: Optional[EvalReport] = None  # the evaluation train.objective selects: checkpoints/selected/


Report = Callable[[EvalReport], None]


class InjectedCrash(RuntimeError):
    """Raised at `faults.crash_at`: a real exception from inside the loop, for fault-tolerance tests."""


class ResumeError(ValueError):
    """A checkpoint that cannot continue this config; one line with the fix."""


# How and from where the data is read, not which data: a resume may change these (a dataset moved to another disk)
_DATA_LOGISTICS = ("num_workers", "cache_dir", "root")


def _which_data(data: dict) -> dict:
    return {k: _which_data(v) if isinstance(v, dict) else v for k, v in data.items() if k not in _DATA_LOGISTICS}


def _resume_state(path: Path | str, cfg: Config) -> dict:
    state = checkpoint.load(path)
    if state["config"]["model"] != to_dict(cfg)["model"]:
        raise ResumeError(f"checkpoint {path} was trained with another model config: resume with the config it was written with")
    was, now = _which_data(state["config"]["data"]), _which_data(to_dict(cfg)["data"])
    changed = sorted(k for k in was.keys() & now.keys() if was[k] != now[k])  # fields a newer version added are not compared
    if changed:
        raise ResumeError(f"checkpoint {path} was trained on other data (data.{', data.'.join(changed)} differ): "
                          "resume with the data config it was written with, or start a new run")
    if state["config"]["train"]["mode"] != cfg.train.mode:
        raise ResumeError(f"checkpoint {path} is a {state['config']['train']['mode']!r} run: "
                          f"resume it with train.mode={state['config']['train']['mode']}")
    return state


def selected(history: list[EvalReport], objective: Objective) -> Optional[EvalReport]:
    """The evaluation the objective ranks best (the earliest of equals); NaN values never win."""
    ranked = [h for h in history if not math.isnan(h.value(objective))]
    return max(ranked, key=lambda h: oriented(objective, h.value(objective)), default=None)


def _keep_selected(path: Path, run: RunLayout) -> None:
    """checkpoints/selected/checkpoint.pt: a hard link to the selected evaluation's checkpoint (a copy where
    links are not possible), so pruning the step folders never removes it."""
    target = run.selected
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copyfile(path, tmp)
    os.replace(tmp, target)


def _prune(run: RunLayout, keep: int) -> None:
    for old in run.steps()[:-keep]:
        for f in old.iterdir():
            f.unlink()
        old.rmdir()


def _interrupted(out: Path, step: int, history: list[EvalReport], resume, eval_every: int) -> str:
    """What a Ctrl-C at `step` leaves: the last checkpoint and the command that continues from it, or nothing."""
    if history or resume is not None:
        kept = f"the checkpoint of iteration {history[-1].step}" if history else f"the checkpoint it resumed from ({resume})"
        return f"interrupted at iteration {step}: {kept} is kept; continue with the same command and --resume {out}"
    return (f"interrupted at iteration {step}, before the first checkpoint (every train.eval_every={eval_every} "
            "iterations): nothing was kept; run the command again")


def run_training(cfg: Config, report: Optional[Report] = None, resume: Path | str | None = None, progress: bool = False) -> RunResult:
    t = cfg.train
    if t.threads is not None:
        torch.set_num_threads(t.threads)
    device = resolve_device(t.device)
    if t.out_dir is None:
        cfg = replace(cfg, train=replace(t, out_dir=f"runs/{t.mode}-{time.strftime('%Y%m%d-%H%M%S')}"))
        t = cfg.train
    out = Path(t.out_dir).expanduser().resolve()
    run = RunLayout(out)
    if resume is None and run.metrics.exists():
        raise ResumeError(f"{out} already holds a run: pick a new train.out_dir, or continue it with --resume")
    adapt = t.mode == "lsd"

    torch.manual_seed(t.seed)
    nets = build_nets(cfg.model, adapt)
    channels_last = device.type == "cuda" and t.channels_last
    for net in nets.named().values():
        net.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format).train()
        if t.compile:  # in place: parameters, state_dict keys and checkpoints stay those of the plain module
            net.compile()
    opts = build_optimizers(nets, cfg.optim)
    start, history = 0, []
    if resume is not None:
        state = _resume_state(resume, cfg)
        checkpoint.restore(state, nets, opts)  # optimizer state lands on its parameters' device
        start = state["step"]
        apply_hparams(opts, cfg.optim, start)  # the config's lr/betas, not the checkpoint's
        history = [EvalReport(**h) for h in state["history"]]
    autocast = autocast_for(device, t.bf16)

    # Every check of the data comes before the run folder: a run that cannot start leaves nothing behind.
    prepare(cfg.data, show_progress=progress, oracle=t.mode == "target_oracle")
    # Unpaired domains: one endless stream each; the oracle's labelled stream is the target's train split.
    labelled_domain, role = (cfg.data.target, "target") if t.mode == "target_oracle" else (cfg.data.source, "source")
    # stream seeds 2s and 2s+1: distinct for every run seed s, so the two domains never share an order
    labelled = endless_batches(train_dataset(labelled_domain, cfg.data, role, labelled=True), cfg.data.batch_size, t.seed * 2, start,
                               cfg.data.num_workers)
    unlabelled = None
    if adapt:
        unlabelled = endless_batches(train_dataset(cfg.data.target, cfg.data, "target", labelled=False), cfg.data.batch_size,
                                     t.seed * 2 + 1, start, cfg.data.num_workers)
    val = val_loader(val_dataset(cfg.data.target_val, cfg.data, labelled=cfg.data.target_labels), cfg.data)
    source_val = val_loader(val_dataset(cfg.data.source, cfg.data, "source_val"), cfg.data)
    classes = protocol_classes(cfg.data)

    sums: dict[str, float] = defaultdict(float)
    count = 0
    status, message = "completed", f"completed {t.iterations} iterations"
    bar = tqdm(total=t.iterations, initial=start, disable=not progress, desc=t.mode, unit="it", dynamic_ncols=True)
    step, created = start, not out.exists()
    # From the run folder on, a Ctrl-C says what it left; the bar ends its line whatever happens
    try:
        out.mkdir(parents=True, exist_ok=True)
        # A resumed run adds its own files next to the first ones instead of overwriting them.
        resumed_at = None if resume is None else start
        dump_config(cfg, run.config(resumed_at))
        info = {**run_info(device), "seed": t.seed, "resumed_from": str(resume) if resume else None}
        run.info(resumed_at).write_text(json.dumps(info, indent=2))
        for step in range(start + 1, t.iterations + 1):
            set_f_lr(opts.f, cfg.optim, step)
            batch = next(labelled)
            x_s, y_s = batch["image"].to(device, non_blocking=True), batch["label"].to(device, non_blocking=True)
            x_t = next(unlabelled)["image"].to(device, non_blocking=True) if adapt else None
            if channels_last:
                x_s = x_s.contiguous(memory_format=torch.channels_last)
                x_t = x_t.contiguous(memory_format=torch.channels_last) if x_t is not None else None
            if step == cfg.faults.explode_at:
                x_s = x_s * float("nan")  # a real NaN flowing through the networks
            if step == cfg.faults.crash_at:
                raise InjectedCrash(f"faults.crash_at={step}: a deliberate crash, to test how sweeps handle one")
            losses = train_step(nets, opts, x_s, y_s, x_t, cfg.loss, autocast)
            values = torch.stack([v.float() for v in losses.values()]).cpu()  # one device sync per step
            if not bool(torch.isfinite(values).all()):
                name, value = next((k, v) for k, v in zip(losses, values.tolist(), strict=False) if not math.isfinite(v))
                status, message = "diverged", f"{name} became {value} at iteration {step}"
                break
            for k, v in zip(losses, values.tolist(), strict=False):
                sums[k] += v
            count += 1
            bar.update(1)
            if step % t.eval_every == 0 or step == t.iterations:
                ev = validate(nets.f, val, source_val, device, autocast, classes, cfg.data.target_labels, channels_last)
                path = run.step(step)
                target = ev.target
                rep = EvalReport(step, target.miou if target else math.nan, target.per_class_iou if target else {},
                                 {k: v / count for k, v in sums.items()}, str(path), ev.validators)
                rep = replace(rep, objective=rep.value(t.objective), also=also_reported(cfg.data, rep.per_class_iou))
                history.append(rep)
                checkpoint.save(path, nets, opts, step, to_dict(cfg), {"history": [asdict(h) for h in history]})
                if selected(history, t.objective) is rep:
                    _keep_selected(path, run)
                _prune(run, t.keep_checkpoints)
                with open(run.metrics, "a") as f:
                    f.write(json.dumps(asdict(rep)) + "\n")
                bar.set_postfix({t.objective: f"{rep.objective:.3f}", "loss_f": f"{rep.losses['loss_f']:.3f}"})
                if report is not None:
                    report(rep)
                sums.clear()
                count = 0
    except KeyboardInterrupt:
        if created and not history:  # a folder this call made holds only its config before the first checkpoint
            shutil.rmtree(out, ignore_errors=True)
        raise Interrupted(_interrupted(out, step, history, resume, t.eval_every)) from None
    finally:
        bar.close()
    mious = [h.miou for h in history]
    result = RunResult(
        status, step, mious[-1] if mious else math.nan, max(mious) if mious else math.nan,
        str(out), message, history, selected(history, t.objective),
    )
    run.summary.write_text(json.dumps({k: v for k, v in asdict(result).items() if k != "history"}, indent=2))
    return result
