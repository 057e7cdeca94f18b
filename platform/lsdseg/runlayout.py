"""The one place that knows a training run's folder (`train.out_dir`): every file name under it.

    config.yaml                              the resolved config (config-resumed-at-N.yaml: a resume's)
    run.json                                 git sha, versions, device, seed (run-resumed-at-N.json: a resume's)
    metrics.jsonl                            one line per evaluation
    summary.json                             the run's result, written when it ends
    checkpoints/step_NNNNNNN/checkpoint.pt   the newest train.keep_checkpoints evaluations' checkpoints
    checkpoints/step_NNNNNNN/lineage.json    beside a checkpoint of a schedule of values (lsdseg.schedule)
    checkpoints/selected/checkpoint.pt       the evaluation train.objective selects (a hard link)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

CHECKPOINT = "checkpoint.pt"  # a checkpoint's file in its folder (a Ray Tune checkpoint folder holds the same)
LINEAGE = "lineage.json"  # beside checkpoint.pt: [[from_step, values], ...]


@dataclass(frozen=True)
class RunLayout:
    folder: Path

    def config(self, resumed_at: Optional[int] = None) -> Path:
        return self.folder / ("config.yaml" if resumed_at is None else f"config-resumed-at-{resumed_at}.yaml")

    def info(self, resumed_at: Optional[int] = None) -> Path:
        return self.folder / ("run.json" if resumed_at is None else f"run-resumed-at-{resumed_at}.json")

    @property
    def metrics(self) -> Path:
        return self.folder / "metrics.jsonl"

    @property
    def summary(self) -> Path:
        return self.folder / "summary.json"

    @property
    def checkpoints(self) -> Path:
        return self.folder / "checkpoints"

    def step(self, step: int) -> Path:
        """The checkpoint of the evaluation at iteration `step`."""
        return self.checkpoints / f"step_{step:07d}" / CHECKPOINT

    def steps(self) -> list[Path]:
        """The step folders on disk, oldest first."""
        return sorted(self.checkpoints.glob("step_*"))

    @property
    def selected(self) -> Path:
        return self.checkpoints / "selected" / CHECKPOINT

    def latest(self) -> Optional[Path]:
        """The newest evaluation checkpoint, or None."""
        found = sorted(self.checkpoints.glob(f"step_*/{CHECKPOINT}"))
        return found[-1] if found else None
