"""Training under a schedule of values: what Population Based Training finds, and how it is retrained.

PBT (Jaderberg et al., "Population Based Training of Neural Networks", 2017) does not return one
configuration: a trial that copied a stronger one's weights and perturbed its values trained under its
ancestors' values first, then under its own. Its result is a schedule, `[(from_step, values), ...]`. To
confirm it on fresh seeds, the schedule is replayed from scratch (as Ray's PopulationBasedTrainingReplay
does for one trial): train with the first values up to the first change, then continue from that
checkpoint with the next values, and so on.

Every checkpoint carries its lineage (`LINEAGE`, the schedule that produced its weights) beside it, so a
trial that restores another trial's checkpoint inherits that trial's history of values. Ray-free: the
trainable and the benchmark both call `run_schedule`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from lsdseg import checkpoint as ckpt
from lsdseg.config_io import with_values
from lsdseg.runlayout import LINEAGE
from lsdseg.train import EvalReport, RunResult, run_training

Schedule = list[tuple[int, dict[str, Any]]]


class _Change(Exception):
    """Ends a stretch of the schedule at the checkpoint after which its values change."""

    def __init__(self, checkpoint: str):
        super().__init__(checkpoint)
        self.checkpoint = checkpoint


def read_lineage(checkpoint_folder: Path | str) -> Optional[Schedule]:
    """The schedule that produced a checkpoint's weights; None for a checkpoint written without one."""
    path = Path(checkpoint_folder) / LINEAGE
    return [(int(step), values) for step, values in json.loads(path.read_text())] if path.is_file() else None


def in_force(schedule: Schedule, step: int) -> dict[str, Any]:
    return [values for start, values in schedule if start <= step][-1]


def run_schedule(base: dict[str, Any], schedule: Sequence[tuple[int, dict[str, Any]]], fixed: dict[str, Any],
                 report: Callable[[EvalReport], None], resume: Optional[Path] = None) -> RunResult:
    """`run_training` on `base` with the values `schedule` puts in force at each step (plus `fixed`), from
    `resume` or from scratch. A checkpoint restored from another run (PBT's exploit) brings its lineage: the
    stretch before the restored step is what that run trained with."""
    schedule = sorted((int(step), dict(values)) for step, values in schedule)
    if not schedule or schedule[0][0] != 0:
        raise ValueError("a schedule starts at step 0")
    t = base["train"]
    if any(step % t["eval_every"] and step != t["iterations"] for step, _ in schedule):
        raise ValueError(f"a schedule changes values only at evaluations (every {t['eval_every']} iterations), where checkpoints are")
    while True:
        start = 0 if resume is None else ckpt.load(resume)["step"]
        inherited = (read_lineage(resume.parent) if resume is not None else None) or []
        values = in_force(schedule, start)
        lineage = [(s, v) for s, v in inherited if s < start] or ([(0, values)] if start == 0 else [])
        if not lineage or lineage[-1][1] != values:
            lineage.append((start, values))
        stop_at = next((s for s, _ in schedule if s > start), None)

        def hook(ev: EvalReport, lineage=lineage, stop_at=stop_at) -> None:
            (Path(ev.checkpoint).parent / LINEAGE).write_text(json.dumps(lineage))
            report(ev)
            if ev.step == stop_at:
                raise _Change(ev.checkpoint)

        try:
            return run_training(with_values(base, {**values, **fixed}), report=hook, resume=resume)
        except _Change as change:
            resume = Path(change.checkpoint)
