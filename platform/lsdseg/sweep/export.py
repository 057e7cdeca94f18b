"""`lsdseg export`: what a sweep shipped (its verified candidate, or the default weights), reproducible
and registered.

The config comes from the shipped checkpoint, which holds the exact config the trial trained with (the
base config, its sampled values, the threads Ray gave it). Only `train.out_dir` is cleared, so that
`lsdseg train --config best.yaml` starts a fresh run folder instead of refusing the trial's own.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from lsdseg import checkpoint
from lsdseg.config_io import dump_config, with_values
from lsdseg.sweep.errors import SweepError
from lsdseg.sweep.results import SweepResults
from lsdseg.sweep.serving import log_segmenter

ARTIFACT = "best_checkpoint"  # where `lsdseg sweep` logs the winner's checkpoint in the parent run
MODEL = "segmenter"  # the registered pyfunc model's name in the parent run


def check_alias(alias: str) -> None:
    """MLflow's rules for an alias, checked before anything is written (MLflow would refuse it only after the
    model version exists)."""
    if not re.fullmatch(r"[\w-]{1,255}", alias) or re.fullmatch(r"latest|v\d+|version\d+", alias, re.IGNORECASE):
        raise SweepError(f"--alias {alias!r}: an alias is letters, digits, _ and -, and not 'latest' or a version "
                         "('v3'): pick another, e.g. champion")


def _best_checkpoint(results: SweepResults) -> Path:
    found = results.best_checkpoint()
    if found is None:
        raise SweepError(f"sweep {results.folder} has no shipped checkpoint (it has not finished): run or resume the sweep first")
    return found


def export_config(results: SweepResults, out: Path, overwrite: bool = False) -> Path:
    if not out.parent.is_dir():
        raise SweepError(f"--out {out}: folder {out.parent} does not exist: create it, or write the config elsewhere")
    if out.exists() and not overwrite:
        raise SweepError(f"--out {out} already exists: pass --overwrite to replace it, or write the config elsewhere")
    state = checkpoint.load(_best_checkpoint(results))
    dump_config(with_values(state["config"], {"train.out_dir": None}), out)
    return out


def _log_model(results: SweepResults, path: Path) -> str:
    """What was shipped as an MLflow pyfunc model (`Segmenter`) in the sweep's parent run; its URI."""
    mlflow.set_tracking_uri(results.state.tracking_uri)
    with mlflow.start_run(run_id=results.parent_run_id):
        return log_segmenter(MODEL, path)


def register_best(results: SweepResults, name: str, alias: str) -> ModelVersion:
    """A new version of registered model `name`: a model that segments images (a pyfunc around the shipped
    checkpoint), tagged with what was shipped and the figures that hold for it, each named by its seeds. The
    bare checkpoint is logged too (`best_checkpoint/`)."""
    client, run_id = results.client, results.parent_run_id
    path, row = _best_checkpoint(results), results.best_row
    try:
        if not client.list_artifacts(run_id, ARTIFACT):
            client.log_artifact(run_id, str(path), ARTIFACT)
        source = _log_model(results, path)
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name, description="LSD-seg checkpoints (F+C, G, D) shipped by `lsdseg sweep`")
        checkpoint = row["checkpoint"]
        tags = {"sweep": results.name, "sweep_folder": str(results.folder), "shipped": row["shipped"],
                "configuration": row["configuration"],
                "checkpoint": f"{checkpoint['how']} of the {checkpoint['phase']} run on seed {checkpoint['seed']}",
                "horizon_iterations": str(row["horizon"])}
        if checkpoint["test_miou"] is not None:  # the checkpoint's own figures, on images nothing selected on
            tags |= {"test_miou": f"{checkpoint['test_miou']:.4f}", "test_split": f"{checkpoint['test_split']} (nothing selected on it)",
                     "val_miou_own": f"{checkpoint['val_miou']:.4f}"}
        passed = next((look for look in row["looks"] if look["ship"]), None)
        if passed is not None:  # what held-out seeds said, not the seeds that chose it
            e = passed["evidence"]
            tags |= {"verified_vs_defaults": f"{e['mean']:.4f}", "verified_low": f"{e['low']:.4f}",
                     "verified_seeds": json.dumps(passed["seeds"])}
        if results.best is not None and results.best.number is not None:
            tags |= {"trial_run_id": results.best.run_id, "optuna_trial_number": str(results.best.number)}
        version = client.create_model_version(name, source, run_id=run_id, tags=tags,
                                              description=f"shipped by sweep {results.name}: {row['reason']}"[:5000])
        client.set_registered_model_alias(name, alias, version.version)
        return version
    except MlflowException as err:
        raise SweepError(f"cannot register model {name!r}: {err.message.splitlines()[0]}") from None
