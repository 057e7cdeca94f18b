"""The one record of a sweep's run, read back from MLflow (the record of what every run did).

Every run trains one configuration on one seed: a search trial (phase "search", on the search seed), a race
run (phase "race", another selection seed) or a verification run (phase "verify", a held-out seed of one
look). `number` names the configuration by its search trial (None: the default weights where no search
trial ran them). The runner, the leaderboard, the report and export all read this record and rank with
`rank_key`, so they always agree.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from mlflow.tracking import MlflowClient

from lsdseg.objectives import VALIDATORS, smoothed

Phase = Literal["search", "race", "verify"]
Curve = tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class TrialRecord:
    run_id: str
    ray_trial_id: str
    phase: Phase
    number: Optional[int]  # the configuration's search trial number
    seed: int
    status: str  # completed / pruned / diverged / errored / interrupted / running
    params: dict[str, Any]  # the searched values, typed as Optuna suggested them
    history: Curve  # (iteration, target mIoU) at every evaluation (none without target labels)
    scores: Curve  # (iteration, smoothed objective, higher is better) at every evaluation
    per_class: dict[str, float] = field(default_factory=dict)  # IoU by class at the last evaluation
    validators: dict[str, Curve] = field(default_factory=dict)  # (iteration, value) by validator
    defaults: bool = False  # a run of the default weights
    look: Optional[int] = None  # verification runs: which look (1: the sweep's own)
    iterations: int = 0  # the length it was trained to
    changes: tuple = ()  # a replayed PBT schedule's later (step, values)

    @property
    def miou(self) -> float:
        """Target mIoU at the last evaluation."""
        return self.history[-1][1] if self.history else math.nan

    @property
    def score(self) -> float:
        """The smoothed score at the last evaluation: what the run is ranked and compared by."""
        return self.scores[-1][1] if self.scores else math.nan

    @property
    def result(self) -> float:
        """The score if the run completed, else NaN: what races and verification compare."""
        return self.score if self.status == "completed" else math.nan

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
    def config_label(self) -> str:
        return "default weights" if self.defaults or self.number is None else f"trial {self.number}"

    @property
    def label(self) -> str:
        return self.config_label if self.phase == "search" else f"{self.config_label}, {self.phase} seed {self.seed}"


def smoothed_curve(curve: Curve, k: int) -> float:
    """The mean of the last `k` values of a curve: a run's score, as the trainable reports it."""
    return smoothed([v for _, v in curve], k)


def rank_key(t: TrialRecord) -> tuple[bool, float]:
    """Completed first, then by score; a NaN score (no evaluation) ranks last, never first."""
    return (t.status == "completed", -math.inf if math.isnan(t.score) else t.score)


def ranked(trials: list[TrialRecord]) -> list[TrialRecord]:
    return sorted(trials, key=rank_key, reverse=True)


def _int(tag: Optional[str]) -> Optional[int]:
    return int(tag) if tag is not None and tag.lstrip("-").isdigit() else None


def load_records(client: MlflowClient, experiment_id: str, parent_run_id: str, params_of: dict[int, dict[str, Any]],
                 defaults: dict[str, Any], defaults_number: Optional[int]) -> list[TrialRecord]:
    """Every child run of a sweep's parent run: search trials in Optuna's order, then race and verification
    runs. Typed params come from the study (`params_of`: Optuna number -> params), the defaults' from
    `defaults`; `defaults_number`: the search trial that ran the default weights, if one did."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=10_000)
    records = []
    for run in runs:
        tags = run.data.tags

        def curve(key: str, run_id: str = run.info.run_id) -> Curve:
            return tuple(sorted((m.step, m.value) for m in client.get_metric_history(run_id, key)))

        number = _int(tags.get("optuna_trial_number"))
        is_defaults = tags.get("defaults") == "true" or (number is not None and number == defaults_number)
        records.append(TrialRecord(
            run_id=run.info.run_id, ray_trial_id=tags.get("ray_trial_id", ""), phase=tags.get("phase", "search"),
            number=number, seed=_int(tags.get("seed")) or 0, status=tags.get("status", "running"),
            params=dict(defaults if is_defaults else params_of.get(number, {})),
            history=curve("miou"), scores=curve("score"),
            per_class={k.split("/", 1)[1]: v for k, v in run.data.metrics.items() if k.startswith("iou/")},
            validators={name: curve(f"val/{name}") for name in VALIDATORS}, defaults=is_defaults,
            look=_int(tags.get("look")), iterations=_int(tags.get("iterations")) or 0,
            changes=tuple(tuple(c) for c in json.loads(tags.get("schedule_changes", "[]"))),
        ))
    order = {"search": 0, "race": 1, "verify": 2}
    return sorted(records, key=lambda t: (order.get(t.phase, 3), t.look or 0, t.number is None, t.number or 0, t.seed))
