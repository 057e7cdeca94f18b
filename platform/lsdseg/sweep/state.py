"""A sweep's own record, sweep.json: typed, versioned, read and written here only.

MLflow holds what every run did; this file holds what the sweep is: its settings, where its runs are
tracked, how far it got, the default weights' values, and the verification looks (the sweep's own, then
one per `--more-seeds` batch). A file of another schema version is refused in one line, and a folder made
before verification existed (schema 1: no "schema" key) is recognised as such: its figures were estimated
on the seeds that chose them. Schema 2 (before search trials could be shorter) is read as full-length search.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass as dataclass_std
from typing import Any, Literal, Optional

from mlflow.tracking import MlflowClient
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from lsdseg.sweep.errors import SweepError
from lsdseg.sweep.layout import SweepLayout
from lsdseg.sweep.settings import SweepSettings

SCHEMA = 3
Status = Literal["running", "interrupted", "finished", "failed"]
Phase = Literal["search", "select", "more_seeds", "done"]
_STATE = ConfigDict(extra="forbid", validate_assignment=True)


class SelectionOnly(SweepError):
    """A sweep folder made before verification existed: its figures came from the seeds that chose its winner."""


@dataclass(config=_STATE)
class Look:
    """One verification batch: the candidate and the default weights, each on these seeds. Judged on its own
    at `alpha` (lsdseg.sweep.verify.look_alpha)."""

    seeds: list[int]
    alpha: float
    iterations: int


@dataclass(config=_STATE)
class SweepState:
    settings: SweepSettings
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    started: str
    objective: str
    searched: list[str]
    defaults: dict[str, Any]  # the base config's values of the searched fields: the default weights
    data: dict[str, dict[str, str]]  # lsdseg.data.split_digests
    first_points: list[dict[str, Any]]  # proposed before the sampler's own: warm-start winners, the defaults
    status: Status = "running"
    phase: Phase = "search"
    defaults_number: Optional[int] = None  # the search trial that ran the default weights
    # how long a search trial trains where that is shorter than every other run (a first look); None: as long
    search_iterations: Optional[int] = Field(None, gt=0)
    references: dict[str, float] = Field(default_factory=dict)
    looks: list[Look] = Field(default_factory=list)
    stopping_replay: Optional[str] = None
    schema: int = SCHEMA

    def replace(self, **changes) -> "SweepState":
        return dataclasses.replace(self, **changes)


_ADAPTER = TypeAdapter(SweepState)


def read_state(layout: SweepLayout) -> SweepState:
    """sweep.json; an empty, torn, foreign or older one is a one-line error (nothing is touched)."""
    try:
        raw = json.loads(layout.state.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SweepError(f"{layout.state} cannot be read ({err}): it is not a sweep.json that `lsdseg sweep` wrote; "
                         "restore it from a backup, or start a new sweep") from None
    if isinstance(raw, dict) and "schema" not in raw and "settings" in raw and "parent_run_id" in raw:
        raise SelectionOnly(f"sweep {layout.folder} was made before verification on held-out seeds existed: its figures "
                            "were estimated on the seeds that chose its winner (selection-only); run a new sweep")
    if isinstance(raw, dict) and raw.get("schema") == 2 and isinstance(raw.get("settings"), dict):
        # schema 2 predates --first-look: its search trials trained full length
        raw = {**raw, "schema": SCHEMA, "settings": {"first_look": 1.0, **raw["settings"]}}
    if isinstance(raw, dict) and raw.get("schema") != SCHEMA:
        raise SweepError(f"{layout.state} has schema {raw.get('schema')!r}, this lsdseg reads schema {SCHEMA}: "
                         "use the lsdseg version that wrote it, or start a new sweep")
    try:
        return _ADAPTER.validate_python(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "sweep.json"
        raise SweepError(f"{layout.state} is not a sweep.json that `lsdseg sweep` wrote ({where}: {first['msg']}); "
                         "restore it from a backup, or start a new sweep") from None


def legacy_summary(layout: SweepLayout) -> Optional[dict[str, Any]]:
    """What `lsdseg sweeps` shows of a schema-1 folder: its raw state, or None for a current one."""
    try:
        raw = json.loads(layout.state.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return raw if isinstance(raw, dict) and "schema" not in raw else None


def write_state(layout: SweepLayout, state: SweepState) -> None:
    tmp = layout.state.with_suffix(".tmp")
    tmp.write_bytes(_ADAPTER.dump_json(state, indent=2))
    tmp.replace(layout.state)  # a driver killed mid-write never leaves a torn sweep.json


@dataclass_std
class Sweep:
    """A sweep in progress: its folder, its state, the base config every run starts from, and the MLflow client
    the driver writes with. The runner, the phases and the finish take this one object."""

    layout: SweepLayout
    state: SweepState
    tree: dict[str, Any]
    client: MlflowClient

    @property
    def settings(self) -> SweepSettings:
        return self.state.settings

    @property
    def study_storage(self) -> str:
        return self.layout.study_storage(self.settings.study_uri)

    def update(self, **changes) -> None:
        """Change the state and write it at once: sweep.json always holds what the driver knows."""
        self.state = self.state.replace(**changes)
        write_state(self.layout, self.state)
