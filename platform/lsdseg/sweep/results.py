"""A sweep as `lsdseg sweep`'s finish, `lsdseg report`, `lsdseg export` and `lsdseg sweeps` read it back:
its folder (SweepLayout, SweepState), its MLflow runs (TrialRecord), its Optuna study, and what they say:
the race on the selection seeds, and each verification look on held-out seeds.

MLflow is the record of what every run did (params, per-evaluation metrics, outcome); the folder holds
the settings, the looks, the shipped configuration (best.json) and the checkpoints; the Optuna study holds
the search distributions and the typed values of every trial.
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

from lsdseg.checkpoint import latest_checkpoint
from lsdseg.objectives import PERCENT, Objective, advantage, text
from lsdseg.runlayout import RunLayout
from lsdseg.sweep.errors import SweepError
from lsdseg.sweep.layout import SweepLayout, find_sweep
from lsdseg.sweep.record import TrialRecord, load_records, ranked
from lsdseg.sweep.state import SweepState, read_state
from lsdseg.sweep.verify import Decision, Paired, decide, paired, seeds_for_power


@dataclass(frozen=True)
class Selection:
    """One configuration in the race: its scores on the selection seeds (the search seed's from its search
    trial where that was a plain run)."""

    label: str
    number: Optional[int]
    defaults: bool
    scores: dict[int, float]  # seed -> score (NaN: the run failed)
    versus_defaults: Optional[Paired]  # on the selection seeds: optimistic, these seeds chose the candidate


@dataclass(frozen=True)
class LookResult:
    """One verification look: the candidate's and the defaults' runs on this look's seeds, and the decision."""

    look: int
    seeds: list[int]
    iterations: int
    alpha: float
    candidate: dict[int, float]
    defaults: dict[int, float]
    decision: Optional[Decision]  # None while runs are missing

    @property
    def complete(self) -> bool:
        return all(s in self.candidate and s in self.defaults for s in self.seeds)


def margin_score(objective: Objective, margin: float) -> float:
    """A margin in the objective's units (mIoU points) as a difference of oriented scores."""
    return margin / 100 if objective in PERCENT else margin


class SweepResults:
    def __init__(self, sweep: str | Path | SweepLayout):
        self.layout = sweep if isinstance(sweep, SweepLayout) else find_sweep(sweep)
        self.folder = self.layout.folder
        self.state: SweepState = read_state(self.layout)
        self.settings = self.state.settings
        self.name: str = self.settings.name
        uri = self.state.tracking_uri
        store = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
        if store is not None and not store.is_file():  # MLflow would create an empty one, then fail deep inside
            raise SweepError(f"the sweep's MLflow store {store} is gone: its runs live there; restore the file "
                             f"(or the folder it was in), then run this again")
        self.client = MlflowClient(uri)
        self.best_row: Optional[dict[str, Any]] = json.loads(self.layout.best.read_text()) if self.layout.best.is_file() else None

    @property
    def parent_run_id(self) -> str:
        return self.state.parent_run_id

    @property
    def references(self) -> dict[str, float]:
        return dict(self.state.references)

    @cached_property
    def study(self) -> optuna.Study:
        return optuna.load_study(study_name=self.name, storage=self.layout.study_storage(self.settings.study_uri))

    @property
    def objective(self) -> Objective:
        return self.state.objective

    def text(self, score: float, signed: bool = False) -> str:
        """A score as the leaderboard and the report write it: in the objective's units."""
        return text(self.objective, score, signed)

    @cached_property
    def searched(self) -> list[str]:
        """The searched config fields (conditional ones included), from the study's distributions."""
        return sorted({k for t in self.study.trials for k in t.distributions})

    @cached_property
    def params_of(self) -> dict[int, dict[str, Any]]:
        return {t.number: t.params for t in self.study.trials}

    @cached_property
    def trials(self) -> list[TrialRecord]:
        """Every run of the sweep: search trials in Optuna's order, then race and verification runs."""
        return load_records(self.client, self.state.experiment_id, self.parent_run_id, self.params_of,
                            self.state.defaults, self.state.defaults_number)

    @property
    def search(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.phase == "search"]

    def ranked(self) -> list[TrialRecord]:
        """Search trials, completed first, then by final smoothed score: the order of the leaderboard."""
        return ranked(self.search)

    # --- the race -------------------------------------------------------------------------------------------------------------
    @cached_property
    def selection(self) -> list[Selection]:
        """Every configuration with a score on a selection seed (a completed search trial counts on the search
        seed, unless under PBT or shorter than race runs); the defaults first, then by the number of seeds and the mean."""
        # a PBT search trial is no plain run of its configuration, nor is a shorter first look
        plain = self.settings.scheduler != "pbt" and self.state.search_iterations is None
        scores: dict[tuple[Optional[int], bool], dict[int, float]] = {}
        raced = {(t.number, t.defaults) for t in self.trials if t.phase == "race"}
        for t in self.trials:
            key = (t.number, t.defaults)
            if t.phase == "race" or (t.phase == "search" and plain and (key in raced or t.defaults or t.status == "completed")):
                scores.setdefault(key, {})[t.seed] = t.result
        base = next((v for (_, d), v in scores.items() if d), {})
        rows = [Selection("default weights" if d else f"trial {n}", n, d, dict(sorted(v.items())),
                          None if d else paired(v, base, self.settings.alpha)) for (n, d), v in scores.items()]
        return sorted(rows, key=lambda r: (not r.defaults, -len(r.scores), -_mean(r.scores)))

    # --- verification -----------------------------------------------------------------------------------------------------------
    @cached_property
    def candidate(self) -> Optional[TrialRecord]:
        """A verification run of the candidate (the configuration the race chose), if it was not the defaults."""
        return next((t for t in self.trials if t.phase == "verify" and not t.defaults), None)

    @property
    def candidate_label(self) -> str:
        return self.candidate.config_label if self.candidate else "default weights"

    @cached_property
    def looks(self) -> list[LookResult]:
        out = []
        margin = margin_score(self.objective, self.settings.margin)
        for k, look in enumerate(self.state.looks, start=1):
            runs = [t for t in self.trials if t.phase == "verify" and (t.look or 1) == k]
            cand = {t.seed: t.result for t in runs if not t.defaults}
            base = {t.seed: t.result for t in runs if t.defaults}
            result = LookResult(k, list(look.seeds), look.iterations, look.alpha, cand, base, None)
            if self.candidate is not None and result.complete:
                result = LookResult(k, list(look.seeds), look.iterations, look.alpha, cand, base,
                                    decide(cand, base, look.alpha, margin, lambda v: advantage(self.objective, v)))
            out.append(result)
        return out

    @property
    def shipped_candidate(self) -> bool:
        """Whether any look cleared the rule (each look is judged on its own runs at its own level)."""
        return any(look.decision is not None and look.decision.ship_candidate for look in self.looks)

    def power(self) -> Optional[tuple[int, float, float]]:
        """(paired seeds, the next look's level, the spread they rest on) a --min-effect difference needs for
        80 % power, from the verification runs' paired spread; None without two complete paired seeds."""
        from lsdseg.sweep.verify import look_alpha

        spreads = [look.decision.evidence.sd for look in self.looks if look.decision and look.decision.evidence]
        if not spreads:
            return None
        alpha = look_alpha(self.settings.alpha, len(self.looks) + 1)
        effect = margin_score(self.objective, self.settings.min_effect)
        n = seeds_for_power(effect, spreads[-1], alpha)
        return None if n is None else (n, alpha, spreads[-1])

    # --- what was shipped ----------------------------------------------------------------------------------------------------------
    def best_checkpoint(self) -> Optional[Path]:
        """The sweep folder's copy of the shipped checkpoint, else the run checkpoint best.json names."""
        if self.layout.best_checkpoint.is_file():
            return self.layout.best_checkpoint
        named = ((self.best_row or {}).get("checkpoint") or {}).get("path")
        return Path(named) if named and Path(named).is_file() else None

    @property
    def best(self) -> Optional[TrialRecord]:
        """The run whose checkpoint was shipped (best.json names it)."""
        if not (self.best_row or {}).get("checkpoint"):
            return None
        run = self.best_row["checkpoint"]["run_id"]
        return next((t for t in self.trials if t.run_id == run), None)

    @property
    def default_weights(self) -> Optional[TrialRecord]:
        """The search trial that ran exactly the base config's values."""
        return next((t for t in self.search if t.defaults), None)

    def source_only_checkpoint(self) -> Optional[Path]:
        return latest_checkpoint(self.layout.source_only)

    def source_only_per_class(self) -> dict[str, float]:
        metrics = RunLayout(self.layout.source_only).metrics
        if not metrics.is_file() or "source_only" not in self.references:
            return {}
        return json.loads(metrics.read_text().splitlines()[-1])["per_class_iou"]


def _mean(scores: dict[int, float]) -> float:
    values = [v for v in scores.values() if math.isfinite(v)]
    return sum(values) / len(values) if values else -math.inf
