"""Live progress of a sweep phase: one line per evaluation and per finished trial, named as the
leaderboard names them, under a bar of trial-iterations with an estimate of the time left."""
from __future__ import annotations

import math
import time
from typing import Callable

from ray.tune import Callback
from tqdm import tqdm

from lsdseg.sweep.console import terminal
from lsdseg.sweep.searcher import trial_outcome


class SweepProgress(Callback):
    def __init__(self, title: str, trials: int, iterations: int, name: Callable[[object], str]):
        self.trials, self.iterations, self.name = trials, iterations, name
        self.title = title
        self.best = -math.inf
        self.finished = 0
        self.total = trials * iterations
        self.start = time.monotonic()
        self._steps: dict[str, int] = {}
        self._bar = None

    def __getstate__(self) -> dict:  # Tune pickles callbacks with the experiment; a bar does not travel
        return {**self.__dict__, "_bar": None}

    def __setstate__(self, state: dict) -> None:  # a resumed driver's clock starts now
        self.__dict__.update(state, start=time.monotonic())

    @property
    def bar(self) -> tqdm:
        if self._bar is None:  # total: every planned trial running to the end; early stops shrink it
            out = terminal()
            self._bar = tqdm(total=self.total, desc=self.title, unit="it", file=out, dynamic_ncols=True,
                             mininterval=1.0, disable=not out.isatty(), bar_format="{desc}: {percentage:3.0f}%|{bar}| "
                             "{n_fmt}/{total_fmt} trial-iterations [{elapsed}<{remaining}] {postfix}")
        return self._bar

    def _say(self, text: str) -> None:
        best = "-" if self.best == -math.inf else f"{self.best * 100:.1f}"
        status = f"{self.finished}/{self.trials} trials done, best score {best}"
        if self.bar.disable:  # a log or a pipe: no bar redrawn in place, so each line carries the status
            text = f"[{self.title} | {status} | {self._left()}] {text}"
        else:
            self.bar.set_postfix_str(status)
        self.bar.write(text, file=terminal())

    def _left(self) -> str:
        """The time left at the rate so far (trial-iterations per second), for lines without a bar."""
        elapsed = time.monotonic() - self.start
        done = sum(self._steps.values())
        if not done:
            return "time left: -"
        left = max(0.0, (self.total - done) * elapsed / done)
        return f"about {left / 60:.0f} min left" if left >= 60 else f"about {left:.0f} s left"

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "score" in result and math.isfinite(result["score"]):
            self.best = max(self.best, result["score"])
            step = int(result["step"])
            self.bar.update(step - self._steps.get(trial.trial_id, 0))
            self._steps[trial.trial_id] = step
            self._say(f"{self.name(trial)}: iteration {step}/{result['iterations']}, mIoU {result['miou'] * 100:.1f}, "
                      f"score {result['score'] * 100:.1f}")

    def _end(self, trial, outcome: str) -> None:
        self.finished += 1
        self.total -= self.iterations - self._steps.get(trial.trial_id, 0)  # an early stop frees its budget
        self.bar.total = self.total
        self._say(f"{self.name(trial)}: {outcome}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._end(trial, trial_outcome(trial.last_result, error=False))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trial, f"errored (traceback in {trial.error_file})")

    def on_experiment_end(self, trials, **info):
        if self._bar is not None:
            self._bar.close()
