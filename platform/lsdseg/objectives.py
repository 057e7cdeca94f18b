"""What can select a checkpoint or a configuration, and in which direction (no heavy imports: the config
and the command line read this)."""
from __future__ import annotations

import math
from typing import Literal, Sequence

Objective = Literal["target_miou", "source_miou", "entropy", "im", "snd", "dev"]
# the label-free validators (lsdseg.validators), each logged as val/<name> at every evaluation
VALIDATORS: tuple[Objective, ...] = ("source_miou", "entropy", "im", "snd", "dev")
DIRECTION: dict[Objective, int] = {"target_miou": 1, "source_miou": 1, "entropy": -1, "im": 1, "snd": 1, "dev": -1}  # +1: higher is better


def smoothed(values: Sequence[float], k: int) -> float:
    """The mean of the last `k` values: a run's score (one evaluation swings by several points; the mean of a
    few by less). The trainable, the sweep's records and the benchmarks all score runs with this."""
    recent = list(values)[-k:]
    return math.fsum(recent) / len(recent) if recent else math.nan


def oriented(objective: Objective, value: float) -> float:
    """The objective's value turned so that higher is always better: what searchers and schedulers maximise."""
    return DIRECTION[objective] * value


# How a score is shown: in the objective's own units and direction (mIoU in points), never the negated value
PERCENT: tuple[Objective, ...] = ("target_miou", "source_miou")
UNITS: dict[Objective, str] = {
    "target_miou": "target mIoU, %", "source_miou": "source mIoU, %", "entropy": "target entropy, nats, lower is better",
    "im": "information maximisation, nats", "snd": "soft neighbourhood density", "dev": "DEV target-loss estimate, lower is better",
}


def shown(objective: Objective, score: float) -> float:
    """An (oriented) score in the objective's own units."""
    return DIRECTION[objective] * score * (100 if objective in PERCENT else 1)


def text(objective: Objective, score: float, signed: bool = False) -> str:
    """"31.4" for mIoU scores, "0.482" for the others; "-" for NaN. `signed` for differences: "+2.1"."""
    if math.isnan(score):
        return "-"
    value = shown(objective, score)
    return (f"{value:+.1f}" if signed else f"{value:.1f}") if objective in PERCENT else (f"{value:+.3g}" if signed else f"{value:.3g}")


def advantage(objective: Objective, difference: float) -> str:
    """An oriented difference (higher: better) as an advantage in the objective's units: "+2.1 points",
    "-0.05 nats" (whatever the objective's direction, positive means better)."""
    if math.isnan(difference):
        return "-"
    if objective in PERCENT:
        return f"{difference * 100:+.1f} points"
    return f"{difference:+.3g}{' nats' if objective in ('entropy', 'im') else ''}"
