"""The end of a sweep (and of each later look): decide what to ship, write it everywhere it is read, close
the parent run.

The sweep ships its candidate only where a verification look cleared the decision rule
(lsdseg.sweep.verify); otherwise it ships the default weights. best.json, best_config.yaml,
best_checkpoint/ and the parent run describe what was shipped, with every figure labelled by the seeds it
comes from: selection figures (optimistic: those seeds chose the candidate) apart from verification
figures (held-out seeds), and the shipped checkpoint's own target mIoU on the test split, which nothing
selected on.

The shipped checkpoint is the last one of the shipped configuration's run on the first verification seed
(the defaults' search trial if the defaults were never verified). Under a label-free objective it is that
run's checkpoint the objective selects; under target mIoU no checkpoint is picked by target labels.
"""
from __future__ import annotations

import json
import math
import time
from typing import Any, Optional

from mlflow.entities import Metric, RunTag
from ray import tune

from lsdseg import checkpoint as ckpt
from lsdseg.config_io import dump_config, with_values
from lsdseg.evaluate import evaluate_checkpoint
from lsdseg.objectives import VALIDATORS
from lsdseg.runlayout import CHECKPOINT
from lsdseg.sweep import phases
from lsdseg.sweep.record import TrialRecord
from lsdseg.sweep.results import LookResult, SweepResults
from lsdseg.sweep.state import Sweep
from lsdseg.sweep.stopping import winner_verdict
from lsdseg.sweep.tracking import fail_unfinished
from lsdseg.sweep.verify import Paired


def _location(checkpoint: tune.Checkpoint) -> str:
    """A path on this machine, or a URI (s3://...) where the checkpoint lives on remote storage."""
    path = f"{checkpoint.path}/{CHECKPOINT}"
    return path if checkpoint.filesystem.type_name == "local" else f"{checkpoint.filesystem.type_name}://{path}"


def _shipped_run(results: SweepResults, candidate: bool) -> Optional[TrialRecord]:
    """The run whose checkpoint is shipped: the shipped configuration's completed run on the first
    verification seed, else (the defaults, never verified) their longest run of the search and the race,
    the search trial where it trained full length."""
    first = results.state.looks[0].seeds[0] if results.state.looks else None
    mine = [t for t in results.trials if t.status == "completed" and (t.defaults != candidate)
            and (not candidate or t.number == results.candidate.number)]
    verified = [t for t in mine if t.phase == "verify" and t.seed == first]
    selection = sorted((t for t in mine if t.phase in ("search", "race")), key=lambda t: (-t.iterations, t.phase != "search"))
    return (verified or selection or mine or [None])[0]


def _checkpoint(results: SweepResults, sweep: Sweep, run: TrialRecord, grids: dict) -> tuple[Optional[tune.Checkpoint], str]:
    """The run's checkpoint to ship, and how it was chosen."""
    phase = "search" if run.phase == "search" else "select" if (run.look or 1) == 1 else f"look-{run.look}"
    grid = grids.get(phase) or phases.results_of(sweep, phase)
    result = next((r for r in grid or [] if (r.metrics or {}).get("trial_id") == run.ray_trial_id), None)
    if result is None:
        return None, ""
    objective = results.objective
    if objective in VALIDATORS:  # label-free: the run's own selection reads no target label
        kept = [(c, m) for c, m in result.best_checkpoints or [] if "selection" in m]
        if kept:
            chosen, metrics = max(kept, key=lambda cm: cm[1]["selection"])
            return chosen, f"the checkpoint {objective} selects"
    return result.checkpoint, "the last checkpoint"


def _paired(p: Optional[Paired]) -> Optional[dict[str, float]]:
    return None if p is None else {"mean": p.mean, "low": p.low, "high": p.high, "n": p.n, "sd": p.sd, "alpha": p.alpha}


def _look(look: LookResult) -> dict[str, Any]:
    d = look.decision
    return {"look": look.look, "seeds": look.seeds, "iterations": look.iterations, "alpha": look.alpha,
            "candidate": look.candidate, "defaults": look.defaults, "evidence": _paired(d.evidence) if d else None,
            "ship": bool(d and d.ship_candidate), "reason": d.reason if d else "incomplete"}


def _reason(results: SweepResults) -> str:
    """Why the shipped configuration was shipped, in one sentence."""
    if results.candidate is None:
        return ("the race kept the default weights: no configuration was ahead of them on the selection seeds"
                if results.state.looks else "no verification was run (--verify-seeds 0): the default weights are shipped")
    decided = [look for look in results.looks if look.decision is not None]
    passed = next((look for look in decided if look.decision.ship_candidate), None)
    if passed is not None:
        return f"on look {passed.look} (seeds {passed.seeds}), for {results.candidate_label} {passed.decision.reason}"
    if not decided:
        return f"{results.candidate_label} was not verified: its verification runs did not all complete"
    last = decided[-1]
    return (f"no configuration was reliably better than the defaults: on look {last.look} (seeds {last.seeds}), "
            f"for {results.candidate_label} {last.decision.reason}")


def _metrics(results: SweepResults, shipped_val: float, test: Optional[float]) -> dict[str, float]:
    metrics = {f"reference_{k}_miou": v for k, v in results.references.items()}
    metrics["shipped_candidate"] = float(results.shipped_candidate)
    for look in results.looks:
        suffix = "" if look.look == 1 else f"_look{look.look}"
        if look.decision and look.decision.evidence:
            e = look.decision.evidence
            metrics |= {f"verified_vs_defaults{suffix}": e.mean, f"verified_vs_defaults_low{suffix}": e.low,
                        f"verified_vs_defaults_high{suffix}": e.high, f"verified_seeds{suffix}": e.n,
                        f"verify_iterations{suffix}": look.iterations}
            if look.candidate:
                metrics[f"verified_candidate_mean{suffix}"] = sum(look.candidate.values()) / len(look.candidate)
    chosen = next((r for r in results.selection
                   if not r.defaults and r.number == (results.candidate.number if results.candidate else None)), None)
    if chosen is not None and chosen.versus_defaults is not None:  # the seeds that chose it: an optimistic figure
        metrics |= {"selection_vs_defaults_optimistic": chosen.versus_defaults.mean, "selection_seeds": chosen.versus_defaults.n}
    if not math.isnan(shipped_val):
        metrics["shipped_val_miou"] = shipped_val
    if test is not None:
        metrics["shipped_test_miou"] = test
    return metrics


def _replay(results: SweepResults, tree: dict, number: Optional[int]) -> Optional[str]:
    """Would the early-stopping rule have stopped the candidate's search trial? Replayed on the full score
    curves of the completed search trials (after Ax's best-trial-vulnerability check)."""
    s = results.settings
    curves = {t.number: list(t.scores) for t in results.search if t.status == "completed" and t.scores}
    if s.scheduler in ("none", "pbt") or number not in curves:
        return None
    return winner_verdict(s.scheduler, curves, number, max_t=tree["train"]["iterations"],
                          grace_period=s.grace_period, reduction_factor=s.reduction_factor)


def finish(sweep: Sweep, grids: dict) -> SweepResults:
    state, client = sweep.state, sweep.client
    fail_unfinished(client, state.experiment_id, state.parent_run_id)
    results = SweepResults(sweep.layout)
    failed = not any(t.status == "completed" for t in results.search)
    if not failed:
        _ship(results, sweep, grids)
    sweep.update(status="failed" if failed else "finished", phase="done")
    client.set_terminated(state.parent_run_id, "FAILED" if failed else "FINISHED")
    return SweepResults(sweep.layout)


def _ship(results: SweepResults, sweep: Sweep, grids: dict) -> None:
    state, tree, client = sweep.state, sweep.tree, sweep.client
    layout, parent, candidate = results.layout, state.parent_run_id, results.shipped_candidate
    run = _shipped_run(results, candidate)
    params = dict(results.candidate.params) if candidate else dict(state.defaults)
    changes = list(results.candidate.changes) if candidate else []  # a PBT schedule's later values
    row: dict[str, Any] = {
        "schema": 2, "shipped": "candidate" if candidate else "defaults", "objective": state.objective,
        "configuration": results.candidate_label if candidate else "default weights", "params": params, "changes": changes,
        "reason": _reason(results),
        "candidate": None if results.candidate is None else {"label": results.candidate_label, "number": results.candidate.number,
                                                             "params": results.candidate.params},
        "selection": [{"label": r.label, "scores": r.scores, "versus_defaults_optimistic": _paired(r.versus_defaults)}
                      for r in results.selection],
        "looks": [_look(look) for look in results.looks],
        "horizon": state.looks[0].iterations if state.looks else tree["train"]["iterations"],
        "checkpoint": None,
    }
    power = results.power()
    if power is not None:
        row["power"] = {"min_effect": state.settings.min_effect, "seeds": power[0], "alpha": power[1], "sd": power[2]}
    shipped_val, test = math.nan, None
    if run is not None:
        chosen, how = _checkpoint(results, sweep, run, grids)
        if chosen is not None:
            chosen.to_directory(str(layout.best_checkpoint_dir))  # a local copy, wherever the run trained
            saved = ckpt.load(layout.best_checkpoint)
            step = saved["step"]
            shipped_val = next((h["miou"] for h in saved["history"] if h["step"] == step), math.nan)
            measured = evaluate_checkpoint(saved, "target_test") if tree["data"]["target_labels"] else None
            test = measured.evaluation.miou if measured else None
            row["checkpoint"] = {"path": _location(chosen), "run_id": run.run_id, "ray_trial_id": run.ray_trial_id, "phase": run.phase,
                                 "seed": run.seed, "step": step, "how": how, "val_miou": shipped_val, "test_miou": test,
                                 "test_split": measured.split if measured else None, "test_images": measured.images if measured else 0}
            client.log_artifacts(parent, str(layout.best_checkpoint_dir), "best_checkpoint")
    layout.best.write_text(json.dumps(row, indent=2))
    dump_config(with_values(tree, params), layout.best_config)  # retrain: lsdseg train --config it
    client.log_artifact(parent, str(layout.best))
    client.log_artifact(parent, str(layout.best_config))
    now = int(time.time() * 1000)
    tags = [RunTag("shipped", row["shipped"]), RunTag("shipped_configuration", row["configuration"]),
            RunTag("decision", row["reason"][:5000]),
            RunTag("verify_seeds", json.dumps([look.seeds for look in results.looks])), RunTag("candidate", results.candidate_label)]
    client.log_batch(parent, metrics=[Metric(k, float(v), now, 0) for k, v in _metrics(results, shipped_val, test).items()
                                      if math.isfinite(v)],
                     tags=tags)
    sweep.update(stopping_replay=_replay(results, tree, results.candidate.number if results.candidate else state.defaults_number))
