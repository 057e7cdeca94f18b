"""The end of a sweep: declare the winner, write it down everywhere it is read, close the parent run.

The winner is the configuration with the best confirmed mean over seeds (or, with select="lower", mean
minus spread); without a confirmation (--confirm-top 0) it is the best search trial by score. Its run on
the search's own seed (else its first completed seed) supplies the checkpoint. best.json, best_config.yaml,
best_checkpoint/ and the parent run's metrics all describe that one winner.
"""
from __future__ import annotations

import json
import math
import time
from typing import Optional

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from ray import tune

from lsdseg.config_io import dump_config, with_values
from lsdseg.sweep.confirm import Confirmed
from lsdseg.sweep.layout import SweepLayout
from lsdseg.sweep.record import TrialRecord, ranked
from lsdseg.sweep.results import SweepResults, write_state
from lsdseg.sweep.settings import SweepSettings
from lsdseg.sweep.stopping import winner_verdict
from lsdseg.sweep.tracking import fail_unfinished


def _location(checkpoint: tune.Checkpoint) -> str:
    """A path on this machine, or a URI (s3://...) where the checkpoint lives on remote storage."""
    path = f"{checkpoint.path}/checkpoint.pt"
    return path if checkpoint.filesystem.type_name == "local" else f"{checkpoint.filesystem.type_name}://{path}"


def _selected(result: tune.Result) -> tuple[Optional[tune.Checkpoint], dict]:
    """A run's checkpoint that its objective selects, with the metrics of its evaluation."""
    kept = [(c, m) for c, m in result.best_checkpoints or [] if "selection" in m]
    return max(kept, key=lambda cm: cm[1]["selection"]) if kept else (result.checkpoint, result.metrics or {})


def _run_of(win: Confirmed, trials: list[TrialRecord]) -> Optional[TrialRecord]:
    """The winner's run whose checkpoint is shipped: its search trial, else its first completed seed."""
    rank = win.candidate.rank
    mine = [t for t in trials if t.status == "completed" and (
        (t.phase == "search" and win.candidate.from_search and t.number is not None and t.number == win.candidate.number) or
        (t.phase == "confirm" and t.confirm_rank == rank))]
    return min(mine, key=lambda t: (t.phase != "search", t.seed), default=None)


def _replay(results: SweepResults, s: SweepSettings, tree: dict, winner_number: Optional[int]) -> Optional[str]:
    """Would the early-stopping rule have stopped the eventual winner? Replayed on the full score curves
    of the completed search trials (after Ax's best-trial-vulnerability check)."""
    curves = {t.number: list(t.scores) for t in results.search if t.status == "completed" and t.scores}
    if s.scheduler == "none" or winner_number not in curves:
        return None
    return winner_verdict(s.scheduler, curves, winner_number, max_t=tree["train"]["iterations"],
                          grace_period=s.grace_period, reduction_factor=s.reduction_factor)


def _metrics(win: Optional[Confirmed], best: TrialRecord, references: dict[str, float]) -> dict[str, float]:
    metrics = {f"reference_{k}_miou": v for k, v in references.items()} | {"best_score": best.score, "best_miou": best.miou}
    if win is not None:
        metrics |= {"confirmed_mean": win.mean, "confirmed_worst": win.worst, "confirmed_seeds": len(win.scores)}
        if not math.isnan(win.std):
            metrics["confirmed_std"] = win.std
        if win.versus_defaults is not None:
            v = win.versus_defaults
            metrics |= {"vs_defaults": v.mean, "vs_defaults_low": v.low, "vs_defaults_high": v.high}
    return metrics


def finish(layout: SweepLayout, state: dict, s: SweepSettings, tree: dict, client: MlflowClient,
           grids: list[tune.ResultGrid]) -> SweepResults:
    write_state(layout, state)
    fail_unfinished(client, state["experiment_id"], state["parent_run_id"])
    results = SweepResults(layout)
    # under PBT the defaults' search trial may have taken another trial's weights: no reference then
    defaults = next((t for t in results.search if t.params == state["defaults"] and s.scheduler != "pbt"), None)
    state["defaults_number"] = defaults.number if defaults else None
    if defaults is not None and defaults.status == "completed":
        state["references"]["default_weights"] = defaults.score
    win = results.winner
    best = _run_of(win, results.trials) if win else next(iter(r for r in ranked(results.search) if r.status == "completed"), None)
    parent = state["parent_run_id"]
    if best is not None:
        # each run's checkpoint that its objective selects (Tune keeps it beside the latest)
        checkpoints = {r.metrics.get("trial_id"): _selected(r) for grid in grids for r in grid if r.metrics}
        checkpoint, evaluation = checkpoints.get(best.ray_trial_id, (None, {}))
        confirmed = None if win is None else {
            "rank": win.candidate.rank, "changes": win.candidate.changes, "label": win.candidate.label, "scores": win.scores, "mean": win.mean, "std": win.std,
            "worst": win.worst, "versus_defaults": None if win.versus_defaults is None else vars(win.versus_defaults)}
        row = {"ray_trial_id": best.ray_trial_id, "run_id": best.run_id, "number": best.number, "seed": best.seed,
               "phase": best.phase, "params": best.params, "score": best.score, "miou": best.miou,
               "checkpoint": _location(checkpoint) if checkpoint else None, "objective": tree["train"]["objective"],
               "checkpoint_step": evaluation.get("step"), "checkpoint_miou": evaluation.get("miou"), "confirmed": confirmed}
        layout.best.write_text(json.dumps(row, indent=2))
        dump_config(with_values(tree, best.params), layout.best_config)  # retrain: lsdseg train --config it
        client.log_artifact(parent, str(layout.best))
        client.log_artifact(parent, str(layout.best_config))
        if checkpoint is not None:  # a local copy, wherever the trial ran and whatever the storage
            checkpoint.to_directory(str(layout.best_checkpoint_dir))
            client.log_artifacts(parent, str(layout.best_checkpoint_dir), "best_checkpoint")
        metrics, now = _metrics(win, best, state["references"]), int(time.time() * 1000)
        client.log_batch(parent, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if not math.isnan(v)])
        state["stopping_replay"] = _replay(results, s, tree, win.candidate.number if win else best.number)
    # a sweep in which no search trial completed has no winner: it failed, and says so
    failed = not any(t.status == "completed" for t in results.search)
    state |= {"status": "failed" if failed else "finished", "phase": "done"}
    write_state(layout, state)
    client.set_terminated(parent, "FAILED" if failed else "FINISHED")
    return SweepResults(layout)
