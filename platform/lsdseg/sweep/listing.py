"""`lsdseg sweeps`: the sweeps under a root, from their folders alone (no MLflow, no Ray)."""
from __future__ import annotations

import json
from pathlib import Path

from lsdseg.sweep.layout import SweepLayout, sweeps_under
from lsdseg.sweep.results import read_state


def _row(layout: SweepLayout) -> str:
    state = read_state(layout)
    s = state["settings"]
    # trials done: finished runs of the Tune search experiment (Tune writes a result per trial folder)
    done = sum(1 for _ in (layout.folder / "trials").glob("*/result.json")) if s.get("storage") is None else None
    best = json.loads(layout.best.read_text()) if layout.best.is_file() else None
    confirmed = (best or {}).get("confirmed")
    figure = "-" if best is None else (f"{confirmed['mean'] * 100:.1f} ({len(confirmed['scores'])} seeds)" if confirmed
                                       else f"{best['score'] * 100:.1f} (1 seed)")
    trials = f"{'?' if done is None else done}/{s['num_samples']}"
    return f"{s['name']:<28} {state.get('status', '?'):<11} {state.get('phase', '?'):<8} {trials:>7}  {figure:<16} {state.get('started', '-')}"


def render_sweeps(root: Path) -> str:
    layouts = sweeps_under(root)
    if not layouts:
        return f"no sweeps under {root}/ (start one with `lsdseg sweep`)"
    head = f"{'name':<28} {'status':<11} {'phase':<8} {'trials':>7}  {'best (confirmed)':<16} started"
    return "\n".join([head, *(_row(layout) for layout in layouts)])
