"""The settings of one sweep: what to search, how many trials, where results go."""
from __future__ import annotations

import time
from typing import Literal, Optional

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass


@dataclass(config=ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False))
class SweepSettings:
    name: str = Field(default_factory=lambda: time.strftime("sweep-%Y%m%d-%H%M%S"), pattern=r"^[A-Za-z0-9._-]+$")
    space: str = "full"  # a module of search_spaces/ or a path to a .py file defining space(trial)
    num_samples: int = Field(8, gt=0)  # search trials
    max_concurrent: int = Field(2, gt=0)  # trials running at once
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)  # fractions pack several trials on one GPU
    time_budget_s: Optional[float] = Field(None, gt=0)  # stop starting and running trials after this long
    sampler_seed: int = 0
    searcher: Literal["tpe", "random"] = "tpe"
    # Early stopping (lsdseg.sweep.stopping): asha (one bracket), hyperband (asynchronous HyperBand, three
    # brackets, the most conservative never stops early), asha_patient (ASHA with twice the grace), none;
    # or pbt: Population Based Training, which stops nothing but lets the weakest copy the strongest.
    # none by default: on sampler seed 1 (bench/search_quality.py) ASHA stopped a slow starter that would have
    # been 2nd, TPE then proposed elsewhere and the sweep declared the defaults; without stopping TPE found
    # one +6.4 [+1.4, +11.4] better on fresh seeds. On seed 0 both tried the same 8 trials and declared the same
    # one. Stopping saves at most 5 x 100 of the 4,200 trial-iterations.
    scheduler: Literal["asha", "hyperband", "asha_patient", "pbt", "none"] = "none"
    # Iterations every trial gets before it may be stopped. 200 of the packaged 300, not 100: ASHA replayed on
    # the full curves of a random search (bench/search_quality.py) would have stopped at 100 the 2nd, 3rd and
    # 4th best trials at 300 and kept two that declined; at 200 it keeps the top 2 and stops the 4th.
    grace_period: int = Field(200, gt=0)
    reduction_factor: float = Field(3.0, gt=1)  # ASHA: keep the top 1/reduction_factor at each rung
    # PBT: every this many iterations a trial in the bottom quarter of the population takes the weights of
    # one in the top quarter and perturbs its continuous values (x0.8 or x1.2, or a new draw with p=0.25).
    pbt_interval: int = Field(100, gt=0)
    # What a trial reports to the searcher and the scheduler: the mean target mIoU of its last `smoothing`
    # evaluations. One evaluation swings by +-5 points on the benchmark; the mean of 3 by much less.
    smoothing: int = Field(3, gt=0)
    # Retrain this many of the best configurations, and the defaults, on fresh seeds; 0: off. 2, not 3: with
    # 3 the default sweep would not end within 20 minutes on 2 cores (each is 2 more full-length runs).
    confirm_top: int = Field(2, ge=0)
    confirm_seeds: int = Field(2, gt=0)  # on this many fresh training seeds, beside the search's own
    # The declared winner: the best mean over seeds, or ("lower") the best mean minus standard deviation
    select: Literal["mean", "lower"] = "mean"
    warm_start: tuple[str, ...] = ()  # sweep folders whose finished trials seed this study
    references: bool = True  # also run source-only on the base config, beside the trials, for comparison
    max_failures: int = Field(2, ge=0)  # retries of a trial that crashed (node loss), from its checkpoint
    experiment: str = "lsdseg"  # MLflow experiment
    tracking_uri: Optional[str] = None  # None: sqlite:///<cwd>/mlflow.db
    root: str = "sweeps"  # sweep folders go under this
    address: Optional[str] = None  # Ray cluster address ("auto" on a cluster); None: a local Ray
    # Trial checkpoints: a folder every node mounts (NFS) or an s3:// URI. Ray does not copy trial folders
    # between nodes, so a cluster needs one. None: the sweep folder, which only a single machine sees.
    storage: Optional[str] = None
