"""The MLflow model `lsdseg export --register` registers: a pyfunc that segments images.

`mlflow.pyfunc.load_model("models:/NAME/VERSION").predict(images)` takes RGB images as a uint8 array,
N x H x W x 3 (or one H x W x 3), and returns train ids, N x H x W uint8, at the images' own size (255
nowhere: every pixel gets a class). The checkpoint travels as the model's artifact, its config inside it;
the `lsdseg` package must be importable where the model is loaded (it is its only requirement).
"""
from __future__ import annotations

from typing import Any, Optional

import mlflow.pyfunc
import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

SIGNATURE = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))]),  # unnamed: predict gets the array
                           outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1))]))


class Segmenter(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from lsdseg.predict import load_segmenter

        self.segmenter = load_segmenter(context.artifacts["checkpoint"])

    def predict(self, context, model_input: Any, params: Optional[dict[str, Any]] = None) -> np.ndarray:
        import torch

        from lsdseg.predict import segment

        images = np.asarray(model_input, dtype=np.uint8)
        if images.ndim == 3:
            images = images[None]
        x = torch.from_numpy(images.copy()).permute(0, 3, 1, 2).float().div_(255.0)
        return segment(self.segmenter, x, images.shape[1:3])
