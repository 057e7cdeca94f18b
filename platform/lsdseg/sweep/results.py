"""A sweep as `lsdseg report` and `lsdseg export` read it back: its folder, its MLflow runs, its Optuna study.

MLflow is the record of what every trial did (params, per-evaluation metrics, outcome); the folder holds
the settings, the winner (best.json) and the checkpoints; the Optuna study holds the search distributions.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

import optuna
from mlflow.tracking import MlflowClient

from lsdseg.sweep.errors import SweepError
from lsdseg.train import latest_checkpoint

DEFAULT_ROOT = Path("sweeps")


@dataclass(frozen=True)
class Trial:
    run_id: str
    run_name: str
    number: Optional[int]  # Optuna's trial number (0: the base config's own values)
    status: str  # completed / pruned / diverged / errored
    params: dict[str, str]  # as logged in MLflow
    history: list[tuple[int, float]]  # (iteration, target mIoU)
    per_class: dict[str, float]  # IoU by class name at the last evaluation

    @property
    def miou(self) -> float:
        return self.history[-1][1] if self.history else math.nan

    @property
    def best_miou(self) -> float:
        return max(v for _, v in self.history) if self.history else math.nan

    @property
    def steps(self) -> int:
        return self.history[-1][0] if self.history else 0

    @property
    def label(self) -> str:
        return f"trial {self.number}"


def find_sweep(sweep: str | Path) -> Path:
    """A sweep folder, or the name of one under sweeps/."""
    for folder in (Path(sweep), DEFAULT_ROOT / str(sweep)):
        if (folder / "sweep.json").is_file():
            return folder.resolve()
    raise SweepError(f"no sweep {str(sweep)!r} (no sweep.json there or under {DEFAULT_ROOT}/): pass a sweep folder or the name `lsdseg sweep` printed")


class SweepResults:
    def __init__(self, sweep: str | Path):
        self.folder = find_sweep(sweep)
        self.state: dict[str, Any] = json.loads((self.folder / "sweep.json").read_text())
        self.name: str = self.state["settings"]["name"]
        self.client = MlflowClient(self.state["tracking_uri"])
        best = self.folder / "best.json"
        self.best_row: Optional[dict[str, Any]] = json.loads(best.read_text()) if best.is_file() else None

    @property
    def parent_run_id(self) -> str:
        return self.state["parent_run_id"]

    @cached_property
    def references(self) -> dict[str, float]:
        """mIoU of the reference runs (source_only, default_weights), as the sweep logged them to its parent run."""
        metrics = self.client.get_run(self.parent_run_id).data.metrics
        return {k[len("reference_"):-len("_miou")]: v for k, v in metrics.items() if k.startswith("reference_") and k.endswith("_miou")}

    @cached_property
    def trials(self) -> list[Trial]:
        """Every trial's MLflow run, in Optuna's order."""
        runs = self.client.search_runs([self.state["experiment_id"]], max_results=10_000,
                                       filter_string=f"tags.mlflow.parentRunId = '{self.parent_run_id}'")
        return sorted((self._trial(r) for r in runs), key=lambda t: (t.number is None, t.number or 0))

    def _trial(self, run) -> Trial:
        history = sorted((m.step, m.value) for m in self.client.get_metric_history(run.info.run_id, "miou"))
        number = run.data.tags.get("optuna_trial_number")
        per_class = {k.split("/", 1)[1]: v for k, v in run.data.metrics.items() if k.startswith("iou/")}
        return Trial(run.info.run_id, run.info.run_name, int(number) if number not in (None, "None") else None,
                     run.data.tags.get("status", "running"), dict(run.data.params), history, per_class)

    @cached_property
    def study(self) -> optuna.Study:
        return optuna.load_study(study_name=self.name, storage=f"sqlite:///{self.folder / 'optuna.db'}")

    @cached_property
    def searched(self) -> list[str]:
        """The searched config fields (conditional ones included), from the study's distributions."""
        return sorted({k for t in self.study.trials for k in t.distributions})

    def ranked(self) -> list[Trial]:
        """Completed trials first, then by final mIoU: the order `lsdseg sweep`'s leaderboard uses."""
        return sorted(self.trials, key=lambda t: (t.status == "completed", -math.inf if math.isnan(t.miou) else t.miou), reverse=True)

    @property
    def best(self) -> Optional[Trial]:
        if self.best_row is None:
            return None  # Ray names a trial's folder `<run name>_<index>_<params>_<date>`
        return next((t for t in self.trials if self.best_row["name"].startswith(t.run_name + "_")), None)

    @property
    def default_weights(self) -> Optional[Trial]:
        """Trial 0, when it ran exactly the base config's values (the sweep recorded it as a reference)."""
        if "default_weights" not in self.references:
            return None
        return next((t for t in self.trials if t.number == 0), None)

    def best_checkpoint(self) -> Optional[Path]:
        """The sweep folder's copy of the winner's checkpoint, else the trial checkpoint best.json names."""
        copy = self.folder / "best_checkpoint" / "checkpoint.pt"
        if copy.is_file():
            return copy
        named = (self.best_row or {}).get("checkpoint")
        return Path(named) if named and Path(named).is_file() else None

    def source_only_checkpoint(self) -> Optional[Path]:
        return latest_checkpoint(self.folder / "reference-source_only")

    def source_only_per_class(self) -> dict[str, float]:
        metrics = self.folder / "reference-source_only" / "metrics.jsonl"
        if not metrics.is_file() or "source_only" not in self.references:
            return {}
        return json.loads(metrics.read_text().splitlines()[-1])["per_class_iou"]
