"""A sweep as `lsdseg sweep`'s finish, `lsdseg report`, `lsdseg export` and `lsdseg sweeps` read it back:
its folder (SweepLayout), its MLflow runs (TrialRecord), its Optuna study and its confirmation.

MLflow is the record of what every run did (params, per-evaluation metrics, outcome); the folder holds
the settings, the confirmation plan, the winner (best.json) and the checkpoints; the Optuna study holds
the search distributions and the typed values of every trial.
"""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

import optuna
from mlflow.tracking import MlflowClient

from lsdseg.checkpoint import latest_checkpoint
from lsdseg.objectives import Objective, text
from lsdseg.sweep.confirm import Candidate, Confirmed, summarise, winner
from lsdseg.sweep.errors import SweepError
from lsdseg.sweep.layout import SweepLayout, find_sweep
from lsdseg.sweep.record import TrialRecord, load_records, ranked


REQUIRED = ("settings", "tracking_uri", "experiment_id", "parent_run_id", "status", "phase")


def read_state(layout: SweepLayout) -> dict[str, Any]:
    """sweep.json; an empty, torn or foreign one is a one-line error (the sweep's files are not touched)."""
    try:
        state = json.loads(layout.state.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SweepError(f"{layout.state} cannot be read ({err}): it is not a sweep.json that `lsdseg sweep` wrote; "
                         "restore it from a backup, or start a new sweep") from None
    missing = [k for k in REQUIRED if not isinstance(state, dict) or k not in state]
    if missing:
        raise SweepError(f"{layout.state} lacks {', '.join(missing)}: it is not a sweep.json that `lsdseg sweep` wrote; "
                         "restore it from a backup, or start a new sweep")
    return state


def write_state(layout: SweepLayout, state: dict[str, Any]) -> None:
    tmp = layout.state.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(layout.state)  # a driver killed mid-write never leaves a torn sweep.json


class SweepResults:
    def __init__(self, sweep: str | Path | SweepLayout):
        self.layout = sweep if isinstance(sweep, SweepLayout) else find_sweep(sweep)
        self.folder = self.layout.folder
        self.state: dict[str, Any] = read_state(self.layout)
        self.name: str = self.state["settings"]["name"]
        uri = self.state["tracking_uri"]
        store = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
        if store is not None and not store.is_file():  # MLflow would create an empty one, then fail deep inside
            raise SweepError(f"the sweep's MLflow store {store} is gone: its runs live there; restore the file "
                             f"(or the folder it was in), then run this again")
        self.client = MlflowClient(uri)
        self.best_row: Optional[dict[str, Any]] = json.loads(self.layout.best.read_text()) if self.layout.best.is_file() else None

    @property
    def parent_run_id(self) -> str:
        return self.state["parent_run_id"]

    @cached_property
    def references(self) -> dict[str, float]:
        """The references: source_only (its final mIoU) and default_weights (the score of the defaults' search trial)."""
        return dict(self.state.get("references", {}))

    @cached_property
    def study(self) -> optuna.Study:
        return optuna.load_study(study_name=self.name, storage=self.layout.optuna_storage)

    @property
    def objective(self) -> Objective:
        """What the scores measure (train.objective); sweeps from before objectives existed used target mIoU."""
        return self.state.get("objective", "target_miou")

    def text(self, score: float, signed: bool = False) -> str:
        """A score as the leaderboard and the report write it: in the objective's units."""
        return text(self.objective, score, signed)

    @cached_property
    def searched(self) -> list[str]:
        """The searched config fields (conditional ones included), from the study's distributions."""
        return sorted({k for t in self.study.trials for k in t.distributions})

    @cached_property
    def candidates(self) -> list[Candidate]:
        """The configurations chosen for confirmation (empty before the search ended, or with --confirm-top 0)."""
        plan = self.state.get("confirm") or {}
        return [Candidate(**c) for c in plan.get("candidates", [])]

    @property
    def seeds(self) -> list[int]:
        return list((self.state.get("confirm") or {}).get("seeds", []))

    @cached_property
    def trials(self) -> list[TrialRecord]:
        """Every run of the sweep: search trials in Optuna's order, then confirmation runs."""
        return load_records(self.client, self.state["experiment_id"], self.parent_run_id,
                            {t.number: t.params for t in self.study.trials}, {c.rank: c.params for c in self.candidates})

    @property
    def search(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.phase == "search"]

    def ranked(self) -> list[TrialRecord]:
        """Search trials, completed first, then by final smoothed score: the order of the leaderboard."""
        return ranked(self.search)

    @cached_property
    def confirmation(self) -> list[Confirmed]:
        return summarise(self.candidates, self.trials, self.seeds) if self.candidates else []

    @property
    def winner(self) -> Optional[Confirmed]:
        return winner(self.confirmation, self.state["settings"].get("select", "mean")) if self.confirmation else None

    @property
    def best(self) -> Optional[TrialRecord]:
        """The run whose checkpoint stands for the winner, found by its Ray trial id (best.json)."""
        if self.best_row is None:
            return None
        return next((t for t in self.trials if t.ray_trial_id == self.best_row["ray_trial_id"]), None)

    @property
    def default_weights(self) -> Optional[TrialRecord]:
        """The search trial that ran exactly the base config's values."""
        number = self.state.get("defaults_number")
        return next((t for t in self.search if number is not None and t.number == number), None)

    def best_checkpoint(self) -> Optional[Path]:
        """The sweep folder's copy of the winner's checkpoint, else the trial checkpoint best.json names."""
        if self.layout.best_checkpoint.is_file():
            return self.layout.best_checkpoint
        named = (self.best_row or {}).get("checkpoint")
        return Path(named) if named and Path(named).is_file() else None

    def source_only_checkpoint(self) -> Optional[Path]:
        return latest_checkpoint(self.layout.source_only)

    def source_only_per_class(self) -> dict[str, float]:
        metrics = self.layout.source_only / "metrics.jsonl"
        if not metrics.is_file() or "source_only" not in self.references:
            return {}
        return json.loads(metrics.read_text().splitlines()[-1])["per_class_iou"]

