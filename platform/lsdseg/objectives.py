"""What can select a checkpoint or a configuration, and in which direction (no heavy imports: the config
and the command line read this)."""
from __future__ import annotations

from typing import Literal

Objective = Literal["target_miou", "source_miou", "entropy", "im", "snd", "dev"]
# the label-free validators (lsdseg.validators), each logged as val/<name> at every evaluation
VALIDATORS: tuple[Objective, ...] = ("source_miou", "entropy", "im", "snd", "dev")
DIRECTION: dict[Objective, int] = {"target_miou": 1, "source_miou": 1, "entropy": -1, "im": 1, "snd": 1, "dev": -1}  # +1: higher is better


def oriented(objective: Objective, value: float) -> float:
    """The objective's value turned so that higher is always better: what searchers and schedulers maximise."""
    return DIRECTION[objective] * value
