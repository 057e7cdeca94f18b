"""The model `lsdseg export --register` logs: an MLflow pyfunc that segments images and carries what it needs.

`mlflow.pyfunc.load_model("models:/NAME@champion").predict(images)` takes RGB images as a uint8 array, N x H x W x 3
(or one H x W x 3), and returns train ids, N x H x W uint8, at the images' own size (every pixel gets a class).
The checkpoint travels as the model's artifact (its config inside it); the `lsdseg` package as its code (MLflow's
`code_paths`; served_model.py builds the model there, so nothing is unpickled); its requirements pin, at the
versions that exported it, every distribution the predict path imports. So the model loads where
`lsdseg-platform` is not installed (it is not on PyPI): tests/test_report.py loads it in a virtualenv holding
only those requirements.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional

import mlflow.pyfunc
import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

import lsdseg

# The distributions `lsdseg.predict` imports, and MLflow, which loads the model.
SERVED = ("torch", "torchvision", "numpy", "pillow", "opencv-python-headless", "pydantic", "pyyaml", "tqdm", "filelock", "mlflow")

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


def requirements() -> list[str]:
    """Exact pins of the distributions loading and predicting import, as installed here."""
    return [f"{name}=={importlib.metadata.version(name)}" for name in SERVED]


def input_example() -> np.ndarray:
    """One small RGB image in the signature's form (fixed, so that two exports log the same example)."""
    return np.random.default_rng(0).integers(0, 256, (1, 32, 48, 3), dtype=np.uint8)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MLflow narrates its check of the input example (an INFO line, a download bar): lines too many for one command."""
    logger, bar = logging.getLogger("mlflow.pyfunc"), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    level, mine = logger.level, bar not in os.environ
    logger.setLevel(logging.WARNING)
    os.environ.setdefault(bar, "false")
    try:
        yield
    finally:
        logger.setLevel(level)
        if mine:
            os.environ.pop(bar, None)


def log_segmenter(name: str, checkpoint: Path) -> str:
    """Log the pyfunc under `name` in the active MLflow run; its model URI."""
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        # the package's sources only: no bytecode of this interpreter
        code = shutil.copytree(Path(lsdseg.__file__).parent, Path(tmp) / "lsdseg", ignore=shutil.ignore_patterns("__pycache__"))
        info = mlflow.pyfunc.log_model(name=name, python_model=str(code / "sweep" / "served_model.py"),
                                       artifacts={"checkpoint": str(checkpoint)}, code_paths=[str(code)],
                                       pip_requirements=requirements(), signature=SIGNATURE, input_example=input_example())
    return info.model_uri
