"""The one place that knows a sweep folder's layout: every file name under `<root>/<name>/`.

    sweep.json               settings, MLflow ids, phase, references, the verification looks (SweepState)
    config.yaml              the base config every trial starts from
    space.py                 a copy of a user's --space file (a resume reloads this copy)
    optuna.db                the Optuna study, unless it lives in a database of its own (--study-uri)
    driver.lock              held (flock) by the one driver of the sweep while it runs
    trials/                  Ray Tune's search experiment (on a cluster: <storage>/<name>)
    select/                  Ray Tune's race and verification experiment (on a cluster: <storage>/<name>-select)
    look-<k>/                Ray Tune's experiment of verification look k >= 2 (--more-seeds)
    reference-source_only/   the source-only reference run
    best.json                what was shipped (the verified candidate or the default weights), and why
    best_config.yaml         the shipped config: `lsdseg train --config best_config.yaml`
    best_checkpoint/         a local copy of the shipped checkpoint, wherever it was trained
    sweep.log                Ray's, MLflow's and Optuna's own output (the terminal shows the product's)
    report/                  `lsdseg report`'s page and figures
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from lsdseg.runlayout import CHECKPOINT
from lsdseg.sweep.errors import SweepError

DEFAULT_ROOT = Path(os.environ.get("LSDSEG_ROOT", "sweeps"))  # on a cluster: a folder every node mounts


@dataclass(frozen=True)
class SweepLayout:
    folder: Path

    @property
    def state(self) -> Path:
        return self.folder / "sweep.json"

    @property
    def config(self) -> Path:
        return self.folder / "config.yaml"

    @property
    def space_copy(self) -> Path:
        return self.folder / "space.py"

    @property
    def optuna_db(self) -> Path:
        return self.folder / "optuna.db"

    def study_storage(self, study_uri: Optional[str]) -> str:
        """The Optuna storage URL of the sweep's study: its own database, or the folder's optuna.db."""
        return study_uri or f"sqlite:///{self.optuna_db}"

    @property
    def lock(self) -> Path:
        return self.folder / "driver.lock"

    def experiment(self, phase: str, storage: Optional[str], name: str) -> tuple[str, str]:
        """(storage_path, name) of a phase's Tune experiment (search, select, look-<k>): in this folder on one
        machine, else under the shared storage every node reaches."""
        folder = "trials" if phase == "search" else phase
        if storage is None:
            return str(self.folder), folder
        return storage, name if phase == "search" else f"{name}-{phase}"

    @property
    def source_only(self) -> Path:
        return self.folder / "reference-source_only"

    @property
    def best(self) -> Path:
        return self.folder / "best.json"

    @property
    def best_config(self) -> Path:
        return self.folder / "best_config.yaml"

    @property
    def best_checkpoint_dir(self) -> Path:
        return self.folder / "best_checkpoint"

    @property
    def best_checkpoint(self) -> Path:
        return self.best_checkpoint_dir / CHECKPOINT

    @property
    def log(self) -> Path:
        return self.folder / "sweep.log"

    @property
    def report(self) -> Path:
        return self.folder / "report"


def find_sweep(sweep: str | Path, root: Path = DEFAULT_ROOT) -> SweepLayout:
    """A sweep folder, or the name of one under the root."""
    for folder in (Path(sweep), root / str(sweep)):
        if SweepLayout(folder).state.is_file():
            return SweepLayout(folder.resolve())
    raise SweepError(f"no sweep {str(sweep)!r} (no sweep.json there or under {root}/): "
                     "pass a sweep folder or the name `lsdseg sweep` printed")


def sweeps_under(root: Path) -> list[SweepLayout]:
    return sorted((SweepLayout(p.parent.resolve()) for p in Path(root).glob("*/sweep.json")), key=lambda s: s.folder.name)
