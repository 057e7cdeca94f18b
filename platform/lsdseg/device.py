"""Where a run computes: the device a config asks for, and bf16 autocast on CUDA (never on the CPU)."""
from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import torch

from lsdseg.config_io import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA device is visible: use train.device=auto or cpu")
    return torch.device(name)


def autocast_for(device: torch.device, bf16: bool) -> Callable:
    if device.type == "cuda" and bf16:
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext
