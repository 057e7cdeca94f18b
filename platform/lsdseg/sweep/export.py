"""`lsdseg export`: what a sweep shipped (its verified candidate, or the default weights), reproducible
and registered.

The config comes from the shipped checkpoint, which holds the exact config the trial trained with (the
base config, its sampled values, the threads Ray gave it). Only `train.out_dir` is cleared, so that
`lsdseg train --config best.yaml` starts a fresh run folder instead of refusing the trial's own.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import mlflow.pyfunc
import numpy as np
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from lsdseg import checkpoint
from lsdseg.config_io import dump_config, with_values
from lsdseg.sweep.errors import SweepError
from lsdseg.sweep.results import SweepResults

ARTIFACT = "best_checkpoint"  # where `lsdseg sweep` logs the winner's checkpoint in the parent run
MODEL = "segmenter"  # the registered pyfunc model's name in the parent run

# The model `lsdseg export --register` registers: a pyfunc that segments images.
# `mlflow.pyfunc.load_model("models:/NAME/VERSION").predict(images)` takes RGB images as a uint8 array, N x H x W x 3
# (or one H x W x 3), and returns train ids, N x H x W uint8, at the images' own size (255 nowhere: every pixel gets
# a class). The checkpoint travels as the model's artifact, its config inside it; the `lsdseg` package must be
# importable where the model is loaded.
SIGNATURE = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))]),  # unnamed: predict gets the array
                           outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1))]))


class Segmenter(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from lsdseg.predict import load_segmenter

        self.segmenter = load_segmenter(context.artifacts["checkpoint"])

    # model_input is hinted np.ndarray, the one hint MLflow takes without inferring a schema or warning on stderr at import
    # (Any or no hint both warn); SIGNATURE above describes the array.
    def predict(self, context, model_input: np.ndarray, params: Optional[dict[str, Any]] = None) -> np.ndarray:
        import torch

        from lsdseg.predict import segment

        images = np.asarray(model_input, dtype=np.uint8)
        if images.ndim == 3:
            images = images[None]
        x = torch.from_numpy(images.copy()).permute(0, 3, 1, 2).float().div_(255.0)
        return segment(self.segmenter, x, images.shape[1:3])



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
    import mlflow

    mlflow.set_tracking_uri(results.state.tracking_uri)
    with mlflow.start_run(run_id=results.parent_run_id):
        info = mlflow.pyfunc.log_model(name=MODEL, python_model=Segmenter(), artifacts={"checkpoint": str(path)},
                                       signature=SIGNATURE, pip_requirements=["lsdseg-platform"])
    return info.model_uri


def register_best(results: SweepResults, name: str) -> ModelVersion:
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
        return client.create_model_version(name, source, run_id=run_id, tags=tags,
                                           description=f"shipped by sweep {results.name}: {row['reason']}"[:5000])
    except MlflowException as err:
        raise SweepError(f"cannot register model {name!r}: {err.message.splitlines()[0]}") from None
