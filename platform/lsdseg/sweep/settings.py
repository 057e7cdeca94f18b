"""The settings of one sweep: what to search, how many trials, where results go."""
from __future__ import annotations

import time
from typing import Literal, Optional

from pydantic import ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass


@dataclass(config=ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False))
class SweepSettings:
    name: str = Field(default_factory=lambda: time.strftime("sweep-%Y%m%d-%H%M%S"), pattern=r"^[A-Za-z0-9._-]+$")
    space: str = "full"  # a module of search_spaces/ or a path to a .py file defining space(trial)
    num_samples: int = Field(11, gt=0)  # search trials, the default weights' included
    max_concurrent: int = Field(2, gt=0)  # trials running at once
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)  # fractions pack several trials on one GPU
    time_budget_s: Optional[float] = Field(None, gt=0)  # stop starting and running trials after this long
    sampler_seed: int = 0
    searcher: Literal["tpe", "random"] = "tpe"
    # Early stopping of search trials (lsdseg.sweep.stopping): asha (one bracket), hyperband (asynchronous
    # HyperBand, three brackets, the most conservative never stops early), asha_patient (ASHA with twice the
    # grace), none; or pbt: Population Based Training, which stops nothing but lets the weakest copy the
    # strongest. Race and verification runs are never stopped early. None by default: a stopped slow starter
    # is lost to the race (docs/sweeps.md).
    scheduler: Literal["asha", "hyperband", "asha_patient", "pbt", "none"] = "none"
    # The share of train.iterations a search trial trains (rounded to the nearest evaluation): a cheaper first
    # look buys more configurations; the race continues the leaders' search runs to full length before any of
    # them is compared with the defaults. None: 1/3 without early stopping, 1 with it (a scheduler already
    # decides how long a search trial trains).
    first_look: Optional[float] = Field(None, gt=0, le=1)
    grace_period: int = Field(200, gt=0)  # iterations every search trial gets before it may be stopped
    reduction_factor: float = Field(3.0, gt=1)  # ASHA: keep the top 1/reduction_factor at each rung
    # PBT: every this many iterations a trial in the bottom quarter of the population takes the weights of
    # one in the top quarter and perturbs its continuous values (x0.8 or x1.2, or a new draw with p=0.25).
    pbt_interval: int = Field(100, gt=0)
    # What a run reports: the mean of its objective over its last `smoothing` evaluations (one evaluation
    # swings by several points; the mean of 3 by less)
    smoothing: int = Field(3, gt=0)
    # Selection (lsdseg.sweep.race): the search's configurations race the incumbent (first the default
    # weights) on up to `selection_seeds` training seeds, the search's own first, spending at most
    # `race_runs` runs (a run that continues a search trial costs the share it adds). With no full-length
    # comparison ahead of the defaults, the best search score ahead of theirs is the candidate.
    # The defaults (11 configurations looked at for a third of the length, 1 selection seed, 10/3 runs of race:
    # five continuations to full length, 4 verification seeds, alpha 0.05: 15 runs) are the shape
    # bench/protocols.py found to ship a truly better configuration most often at the main command's budget
    # (docs/sweeps.md).
    selection_seeds: int = Field(1, ge=1, le=1000)
    race_runs: float = Field(10 / 3, ge=0)
    # Verification (lsdseg.sweep.verify): the one candidate and the default weights, each trained again on
    # `verify_seeds` seeds that no other run of the sweep uses, for `verify_iterations` iterations (None:
    # train.iterations, as long as race runs). 0 seeds: no verification, and the default weights are shipped.
    verify_seeds: int = Field(4, ge=0)
    verify_iterations: Optional[int] = Field(None, gt=0)
    # The decision rule: the candidate is shipped only if its one-sided lower bound at level `alpha` on the
    # verified paired difference to the defaults is above `margin` (in the objective's units: mIoU points)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    margin: float = Field(0.0, ge=0)
    # The difference (objective units) the power advice is about: how many paired seeds would detect it
    min_effect: float = Field(3.0, gt=0)
    warm_start: tuple[str, ...] = ()  # sweep folders whose finished trials seed this study
    # Also train source-only on the base config, beside the trials, for comparison. Off by default: it would
    # take one of the runs the verification needs within the main command's 20 minutes
    references: bool = False
    max_failures: int = Field(2, ge=0)  # retries of a trial that crashed (node loss), from its checkpoint
    experiment: str = "lsdseg"  # MLflow experiment
    tracking_uri: Optional[str] = None  # None: sqlite:///<cwd>/mlflow.db
    # The Optuna study: an SQLAlchemy URL (postgresql://user@host/optuna) of a database of its own, or None: the
    # sweep folder's optuna.db. MLflow and Optuna each keep an alembic_version table, so one database cannot hold both
    study_uri: Optional[str] = None
    root: str = "sweeps"  # sweep folders go under this
    address: Optional[str] = None  # Ray cluster address ("auto" on a cluster); None: a local Ray
    # Trial checkpoints: a folder every node mounts (NFS) or an s3:// URI. Ray does not copy trial folders
    # between nodes, so a cluster needs one. None: the sweep folder, which only a single machine sees.
    storage: Optional[str] = None

    @model_validator(mode="after")
    def _look_without_scheduler(self) -> "SweepSettings":
        if self.first_look not in (None, 1) and self.scheduler != "none":
            raise ValueError(f"--first-look {self.first_look:g} shortens search trials, and --scheduler {self.scheduler} stops "
                             "them early already: drop one of the two")
        return self

    def look_share(self) -> float:
        """The share of train.iterations a search trial trains."""
        return self.first_look if self.first_look is not None else 1 / 3 if self.scheduler == "none" else 1.0


def search_iterations(s: SweepSettings, iterations: int, eval_every: int) -> int:
    """How long a search trial trains: its share of `iterations`, rounded to the nearest evaluation (at least one)."""
    return min(iterations, max(eval_every, round(s.look_share() * iterations / eval_every) * eval_every))
