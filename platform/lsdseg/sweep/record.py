"""The one record of a sweep's trial, read back from MLflow (the record of what every run did).

Search trials and confirmation runs are both trials: a confirmation run retrains the configuration of the
search trial it names (`number`, Optuna's trial number) on another seed. The runner, the leaderboard, the
report and export all read this record and rank with `rank_key`, so they always agree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from mlflow.tracking import MlflowClient

from lsdseg.objectives import VALIDATORS

Phase = Literal["search", "confirm"]


@dataclass(frozen=True)
class TrialRecord:
    run_id: str
    ray_trial_id: str
    phase: Phase
    number: Optional[int]  # Optuna's number of the (confirmed) search trial
    seed: int
    status: str  # completed / pruned / diverged / errored / interrupted / running
    params: dict[str, Any]  # the searched values, typed as Optuna suggested them
    history: tuple[tuple[int, float], ...]  # (iteration, target mIoU) at every evaluation (none without target labels)
    scores: tuple[tuple[int, float], ...]  # (iteration, smoothed objective, higher is better) that steered the search
    per_class: dict[str, float] = field(default_factory=dict)  # IoU by class at the last evaluation
    confirm_rank: Optional[int] = None  # confirmation runs: the rank of the configuration they confirm (0: defaults)
    validators: dict[str, tuple[tuple[int, float], ...]] = field(default_factory=dict)  # (iteration, value) by validator

    @property
    def miou(self) -> float:
        """Target mIoU at the last evaluation."""
        return self.history[-1][1] if self.history else math.nan

    @property
    def score(self) -> float:
        """The smoothed score at the last evaluation: what the trial is ranked and confirmed by."""
        return self.scores[-1][1] if self.scores else math.nan

    @property
    def best_miou(self) -> float:
        """The best evaluation seen: an oracle figure (it peeks at every evaluation), never a result."""
        return max(v for _, v in self.history) if self.history else math.nan

    @property
    def steps(self) -> int:
        """The last iteration evaluated (from the scores: the mIoU history is empty without target labels)."""
        last = self.scores or self.history
        return last[-1][0] if last else 0

    @property
    def label(self) -> str:
        return f"trial {self.number}" if self.phase == "search" else f"trial {self.number} seed {self.seed}"


def rank_key(t: TrialRecord) -> tuple[bool, float]:
    """Completed first, then by score; a NaN score (no evaluation) ranks last, never first."""
    return (t.status == "completed", -math.inf if math.isnan(t.score) else t.score)


def ranked(trials: list[TrialRecord]) -> list[TrialRecord]:
    return sorted(trials, key=rank_key, reverse=True)


def _int(tag: Optional[str]) -> Optional[int]:
    return int(tag) if tag is not None and tag.lstrip("-").isdigit() else None


def load_records(client: MlflowClient, experiment_id: str, parent_run_id: str, params_of: dict[int, dict[str, Any]],
                 params_of_rank: dict[int, dict[str, Any]]) -> list[TrialRecord]:
    """Every child run of a sweep's parent run: search trials in Optuna's order, then confirmation runs.
    Typed params come from the study (`params_of`: Optuna number -> params) for search trials, and from the
    confirmation plan (`params_of_rank`: confirmed rank -> params) for confirmation runs."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=10_000)
    records = []
    for run in runs:
        tags = run.data.tags

        def curve(key: str) -> tuple[tuple[int, float], ...]:
            return tuple(sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)))

        number, rank, phase = _int(tags.get("optuna_trial_number")), _int(tags.get("confirm_rank")), tags.get("phase", "search")
        params = params_of.get(number, {}) if phase == "search" else params_of_rank.get(rank, {})
        records.append(TrialRecord(
            run_id=run.info.run_id, ray_trial_id=tags.get("ray_trial_id", ""), phase=phase,
            number=number, seed=_int(tags.get("seed")) or 0, status=tags.get("status", "running"), params=dict(params),
            history=curve("miou"), scores=curve("score"),
            per_class={k.split("/", 1)[1]: v for k, v in run.data.metrics.items() if k.startswith("iou/")},
            confirm_rank=rank, validators={name: curve(f"val/{name}") for name in VALIDATORS},
        ))
    return sorted(records, key=lambda t: (t.phase != "search", t.number is None, t.number or 0, t.seed))
