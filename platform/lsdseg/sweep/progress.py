"""Live progress of a sweep: one line per evaluation and per finished trial, instead of Ray's tables."""
from __future__ import annotations

import math
import time

from ray.tune import Callback

from lsdseg.sweep.searcher import trial_outcome


class SweepProgress(Callback):
    def __init__(self, num_samples: int):
        self.num_samples = num_samples
        self.best = -math.inf
        self.finished = 0
        self.start = time.monotonic()

    def _line(self, text: str) -> None:
        elapsed = time.monotonic() - self.start
        print(f"[{elapsed / 60:5.1f} min | {self.finished}/{self.num_samples} trials done | best mIoU "
              f"{'-' if self.best == -math.inf else f'{self.best * 100:.1f}'}] {text}", flush=True)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "miou" in result and math.isfinite(result["miou"]):
            self.best = max(self.best, result["miou"])
            self._line(f"{trial}: iteration {result['step']}/{result['iterations']}, mIoU {result['miou'] * 100:.1f}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.finished += 1
        self._line(f"{trial}: {trial_outcome(trial.last_result, error=False)}")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.finished += 1
        self._line(f"{trial}: errored (traceback in {trial.error_file})")
