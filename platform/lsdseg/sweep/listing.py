"""`lsdseg sweeps`: the sweeps under a root, from their folders alone (sweep.json, best.json and the
Optuna study file; no MLflow server, no Ray)."""
from __future__ import annotations

import json
from pathlib import Path

import optuna

from lsdseg.objectives import text
from lsdseg.sweep.layout import SweepLayout, sweeps_under
from lsdseg.sweep.results import read_state


def _finished_trials(layout: SweepLayout, name: str) -> int:
    """Search trials that ended (completed, pruned or failed), as the study records them."""
    if not layout.optuna_db.is_file():
        return 0
    study = optuna.load_study(study_name=name, storage=layout.optuna_storage)
    warm = study.user_attrs.get("warm_start_trials", 0)  # copied in from earlier sweeps, not run here
    return sum(t.state.is_finished() for t in study.get_trials(deepcopy=False)) - warm


def _row(layout: SweepLayout) -> str:
    state = read_state(layout)
    s = state["settings"]
    done = _finished_trials(layout, s["name"])
    best = json.loads(layout.best.read_text()) if layout.best.is_file() else None
    confirmed = (best or {}).get("confirmed")
    objective = state.get("objective", "target_miou")
    figure = "-" if best is None else (f"{text(objective, confirmed['mean'])} ({len(confirmed['scores'])} seeds)" if confirmed
                                       else f"{text(objective, best['score'])} (1 seed)")
    figure += "" if objective == "target_miou" or best is None else f" {objective}"
    trials = f"{done}/{s['num_samples']}"
    return f"{s['name']:<28} {state.get('status', '?'):<11} {state.get('phase', '?'):<8} {trials:>7}  {figure:<16} {state.get('started', '-')}"


def render_sweeps(root: Path) -> str:
    layouts = sweeps_under(root)
    if not layouts:
        return f"no sweeps under {root}/ (start one with `lsdseg sweep`)"
    head = f"{'name':<28} {'status':<11} {'phase':<8} {'trials':>7}  {'best (confirmed)':<16} started"
    return "\n".join([head, *(_row(layout) for layout in layouts)])
