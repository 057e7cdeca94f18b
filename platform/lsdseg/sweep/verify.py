"""What held-out seeds say about a configuration against the default weights, and whether to ship it.

The figure a sweep gives for its candidate comes only from runs that took no part in choosing it: the
candidate and the default weights, each trained again on the same verification seeds. Per seed the
difference candidate - defaults (paired: both share the seed's initialisation and data order), then a t
interval on the mean difference. The decision rule ships the candidate only when the one-sided lower
bound at level alpha clears `margin` (default: above 0); otherwise the default weights are shipped.

Adding seeds after a look and applying the rule again is optional stopping, which inflates false claims.
Here each added batch is judged on its own (its runs never mix with an earlier look's), at a level that
halves with every look: alpha, alpha / 2, alpha / 4, ... Each look is then an exact test on fresh runs, and
the chance that any look ever ships a configuration no better than the defaults stays below 2 alpha (the
levels' sum), however many batches are added.

Pure: no Ray, Optuna or MLflow.
"""
from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass
from typing import Optional

from scipy import stats


@dataclass(frozen=True)
class Paired:
    """The mean per-seed difference a - b with its two-sided (1 - 2 alpha) t interval; `low` is therefore the
    one-sided lower bound at level alpha, the figure the decision rule reads."""

    mean: float
    low: float
    high: float
    n: int
    sd: float  # standard deviation of the per-seed differences (NaN below 2 seeds)
    alpha: float


def paired(a: dict[int, float], b: dict[int, float], alpha: float = 0.025) -> Optional[Paired]:
    """Over the seeds both have a finite score for; None below 2 such seeds (no interval)."""
    diffs = [a[s] - b[s] for s in sorted(set(a) & set(b)) if math.isfinite(a[s]) and math.isfinite(b[s])]
    if len(diffs) < 2:
        return None
    mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    half = _t(alpha, len(diffs) - 1) * sd / math.sqrt(len(diffs))
    return Paired(mean, mean - half, mean + half, len(diffs), sd, alpha)


@functools.lru_cache(maxsize=None)
def _t(alpha: float, df: int) -> float:
    """The t quantile 1 - alpha (cached: simulated sweeps ask for the same few thousands of times)."""
    return float(stats.t.ppf(1 - alpha, df))


def look_alpha(alpha: float, look: int) -> float:
    """The level of look `look` (1: the sweep's own verification; 2, 3, ...: each batch of --more-seeds)."""
    return alpha / 2 ** (look - 1)


def seeds_for_power(effect: float, sd: float, alpha: float, power: float = 0.8, most: int = 10_000) -> Optional[int]:
    """The fewest paired seeds at which a one-sided t test at level `alpha` detects a true mean difference
    of `effect` with probability `power`, given the per-seed differences' standard deviation `sd` (from the
    verification runs); None if more than `most` (or no spread was measured)."""
    if not (math.isfinite(sd) and sd > 0 and effect > 0):
        return None
    for n in range(2, most + 1):
        critical = stats.t.ppf(1 - alpha, n - 1)
        if stats.nct.sf(critical, n - 1, effect * math.sqrt(n) / sd) >= power:
            return n
    return None


@dataclass(frozen=True)
class Decision:
    """What a look concluded: ship the candidate, or the default weights, and why in one sentence."""

    ship_candidate: bool
    reason: str
    evidence: Optional[Paired]  # this look's verification runs alone


def decide(candidate: dict[int, float], defaults: dict[int, float], alpha: float, margin: float,
           text=lambda v: f"{v * 100:+.1f} points") -> Decision:
    """The decision rule on one look's runs: `candidate` and `defaults` map seed -> score, oriented so that
    higher is better (NaN: failed); `text` writes an advantage. A candidate that failed on any verification
    seed is not shipped (a held-out seed it cannot train on is evidence against it); a seed on which only
    the defaults failed is left out of the comparison."""
    failed = sorted(s for s, v in candidate.items() if not math.isfinite(v))
    if failed:
        return Decision(False, f"the candidate failed on verification seed {failed[0]}", None)
    evidence = paired(candidate, defaults, alpha)
    if evidence is None:
        return Decision(False, "fewer than 2 verification seeds have both runs", None)
    bound = f"the advantage over the defaults is at least {text(evidence.low)} at one-sided level {alpha:g}"
    if evidence.low > margin:
        return Decision(True, f"{bound}, above the margin of {text(margin)}", evidence)
    return Decision(False, f"{bound}, not above the margin of {text(margin)}", evidence)
