"""`lsdseg sweeps`: the sweeps under a root, from their folders alone (sweep.json, best.json and the
Optuna study file; no MLflow server, no Ray). A folder made before verification existed is listed with
its figure labelled selection-only: it was estimated on the seeds that chose its winner."""
from __future__ import annotations

import json
from pathlib import Path

import optuna

from lsdseg.objectives import text
from lsdseg.sweep.errors import SweepError
from lsdseg.sweep.layout import SweepLayout, sweeps_under
from lsdseg.sweep.state import legacy_summary, read_state


def _finished_trials(layout: SweepLayout, name: str) -> int:
    """Search trials that ended (completed, pruned or failed), as the study records them."""
    if not layout.optuna_db.is_file():
        return 0
    study = optuna.load_study(study_name=name, storage=layout.optuna_storage)
    warm = study.user_attrs.get("warm_start_trials", 0)  # copied in from earlier sweeps, not run here
    return sum(t.state.is_finished() for t in study.get_trials(deepcopy=False)) - warm


def _shipped(objective: str, best: dict | None) -> str:
    if best is None:
        return "-"
    if best.get("shipped") != "candidate":
        return "default weights"
    passed = next(look for look in best["looks"] if look["ship"])
    return f"{best['configuration']} {text(objective, passed['evidence']['mean'], signed=True)} (verified, {passed['evidence']['n']} seeds)"


def _legacy(layout: SweepLayout, raw: dict) -> str:
    s, best = raw["settings"], json.loads(layout.best.read_text()) if layout.best.is_file() else None
    confirmed = (best or {}).get("confirmed") or {}
    figure = "-" if best is None else text(raw.get("objective", "target_miou"), confirmed.get("mean", best.get("score")))
    trials = f"{_finished_trials(layout, s['name'])}/{s['num_samples']}"
    return (f"{s['name']:<28} {raw.get('status', '?'):<11} {'old':<10} {trials:>7}  "
            f"{figure} (selection-only: made before verification)  {raw.get('started', '-')}")


def _row(layout: SweepLayout) -> str:
    raw = legacy_summary(layout)
    if raw is not None and "settings" in raw:
        return _legacy(layout, raw)
    try:
        state = read_state(layout)
    except SweepError as err:
        return f"{layout.folder.name:<28} unreadable: {err}"
    s = state.settings
    best = json.loads(layout.best.read_text()) if layout.best.is_file() else None
    trials = f"{_finished_trials(layout, s.name)}/{s.num_samples}"
    return f"{s.name:<28} {state.status:<11} {state.phase:<10} {trials:>7}  {_shipped(state.objective, best):<40} {state.started}"


def render_sweeps(root: Path) -> str:
    layouts = sweeps_under(root)
    if not layouts:
        return f"no sweeps under {root}/ (start one with `lsdseg sweep`)"
    head = f"{'name':<28} {'status':<11} {'phase':<10} {'trials':>7}  {'shipped':<40} started"
    return "\n".join([head, *(_row(layout) for layout in layouts)])
