"""What a sweep prints: its closing summary (the search's top trials, the race on the selection seeds, each
verification look on held-out seeds, the decision and what was shipped, and where everything is; every
figure says which seeds it comes from and at which training length it holds), and `lsdseg sweeps`' list."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import optuna
import sqlalchemy.exc

from lsdseg.objectives import UNITS, advantage, text
from lsdseg.sweep.errors import SweepError
from lsdseg.sweep.layout import SweepLayout, sweeps_under
from lsdseg.sweep.results import LookResult, SweepResults, margin_score
from lsdseg.sweep.state import legacy_summary, read_state
from lsdseg.sweep.verify import Paired

HORIZON = ("a gain at a short training length overstates the gain at a longer one (short-horizon bias): on the built-in "
           "benchmark, gains of +9 to +12 points at 300 iterations were +2 to +6 at 1,000 (docs/sweeps.md); "
           "--verify-iterations N verifies at your length")


def _short(name: str) -> str:
    return name.split(".", 1)[-1]


def _pc(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 100:.1f}"


def interval(results: SweepResults, p: Paired | None) -> str:
    """'+2.1 [-1.0, +5.2] (3 seeds)' in the objective's units; the lower end is the decision rule's bound."""
    if p is None:
        return "-"
    low, high = sorted((results.text(p.low, signed=True), results.text(p.high, signed=True)), key=float)
    return f"{results.text(p.mean, signed=True)} [{low}, {high}] ({p.n} seeds, {(1 - 2 * p.alpha) * 100:g} % interval)"


def _search(results: SweepResults, top: int) -> list[str]:
    rows = results.ranked()[:top]
    keys = results.searched
    k = results.settings.smoothing
    seed = results.search[0].seed if results.search else "-"
    head = f"{'trial':>5} {'status':<11} {'iters':>5} {'score':>6} {'mIoU':>5} {'oracle':>6}  " + " ".join(f"{_short(p):>10}" for p in keys)
    length = results.state.search_iterations
    look = f" for {length} iterations (a first look: race runs continue the leaders on this seed)" if length else ""
    lines = [f"search: {len(results.search)} trials on seed {seed}{look}, top {len(rows)} by score (mean of the last {k} evaluations of "
             f"{results.objective}: {UNITS[results.objective]}); mIoU: target mIoU (%) at the last evaluation; "
             "oracle: the best evaluation seen, not a result", head]
    for r in rows:
        values = " ".join(f"{r.params[p]:>10.3g}" if isinstance(r.params.get(p), float) else f"{str(r.params.get(p, '-')):>10}"
                          for p in keys)
        name = f"{r.number}{'d' if r.defaults else ''}"
        lines.append(f"{name:>5} {r.status:<11} {r.steps:>5} {results.text(r.score):>6} {_pc(r.miou):>5} {_pc(r.best_miou):>6}  {values}")
    lines.append("  (d: the default weights)")
    return lines


def _race(results: SweepResults) -> list[str]:
    rows = results.selection
    if not rows:
        return []
    seeds = sorted({s for r in rows for s in r.scores})
    lines = [f"race on the selection seeds {seeds} ({UNITS[results.objective]}); a configuration earned a seed only while ahead of "
             "the incumbent; differences to the defaults here are OPTIMISTIC: these seeds chose the candidate",
             f"  {'configuration':<16} " + " ".join(f"{'seed ' + str(s):>8}" for s in seeds) + "  vs defaults on these seeds"]
    for r in rows:
        cells = " ".join(f"{results.text(r.scores[s]) if s in r.scores else '':>8}" for s in seeds)
        lines.append(f"  {r.label:<16} {cells}  {interval(results, r.versus_defaults) if not r.defaults else ''}")
    lines.append(f"candidate: {results.candidate_label}" + ("" if results.candidate else " (nothing to verify)"))
    return lines


def _look(results: SweepResults, look: LookResult) -> list[str]:
    head = (f"verification, look {look.look}: {results.candidate_label} and the default weights, each trained again on the held-out "
            f"seeds {look.seeds} for {look.iterations} iterations, judged on their own at level {look.alpha:g}")
    lines = [head]
    for name, scores in ((results.candidate_label, look.candidate), ("default weights", look.defaults)):
        cells = " ".join(f"{results.text(scores[s]) if s in scores else '-':>7}" for s in look.seeds)
        lines.append(f"  {name:<16} {cells}")
    d = look.decision
    if d is None:
        lines.append("  (incomplete: resume the sweep to finish it)")
    else:
        lines.append(f"  paired difference to the defaults: {interval(results, d.evidence)}; {d.reason}")
    return lines


def _decision(results: SweepResults) -> list[str]:
    row = results.best_row or {}
    lines = []
    if row.get("shipped") == "candidate":
        lines.append(f"shipped: {row['configuration']}, reliably better than the default weights: {row['reason']}")
    elif row:
        lines.append(f"shipped: the default weights; {row['reason']}")
        power = results.power()
        if results.candidate is not None and power is not None:
            n, alpha, sd = power
            effect = advantage(results.objective, margin_score(results.objective, results.settings.min_effect)).lstrip("+")
            lines.append(f"  to detect a difference of {effect} (--min-effect) with 80 % power at one-sided level {alpha:g} "
                         "(the next look's), "
                         f"given the spread of the verified differences ({advantage(results.objective, sd).lstrip('+')}), takes about {n} "
                         f"paired seeds: lsdseg sweep --resume {results.folder} --more-seeds {n}")
    checkpoint = row.get("checkpoint")
    if checkpoint:
        where = f"{checkpoint['how']} of the {checkpoint['phase']} run on seed {checkpoint['seed']} (iteration {checkpoint['step']})"
        if checkpoint["test_miou"] is None:
            lines.append(f"shipped checkpoint: {where}; no target labels are used, so no target mIoU is reported")
        else:
            lines.append(f"shipped checkpoint: {where}; target mIoU {_pc(checkpoint['test_miou'])} on {checkpoint['test_split']} "
                         f"({checkpoint['test_images']} images nothing selected on), {_pc(checkpoint['val_miou'])} on the validation "
                         "split at that checkpoint")
    if row:
        lines.append(f"horizon: these figures hold at {row['horizon']} iterations; {HORIZON}")
    return lines


def render(results: SweepResults, top: int = 10) -> str:
    lines = _search(results, top) + _race(results)
    for look in results.looks if results.candidate is not None else ():
        lines += _look(results, look)
    if not results.looks:
        lines.append("verification: off (--verify-seeds 0): nothing was verified, and the default weights are shipped")
    lines += _decision(results)
    if results.state.stopping_replay:
        lines.append(f"early stopping: {results.state.stopping_replay}")
    refs = results.references
    if refs:
        lines.append("references: " + ", ".join(f"{k.replace('_', ' ')} {_pc(v)} (final mIoU)" for k, v in refs.items())
                     + " on the search's training seed")
    checkpoint = results.best_checkpoint()
    if checkpoint is not None:
        lines.append(f"best checkpoint: {checkpoint}   (config: {results.layout.best_config})")
    lines.append(f"sweep folder: {results.folder}   (log of Ray, MLflow, Optuna: {results.layout.log})")
    uri = results.state.tracking_uri
    if uri.startswith("http"):  # a tracking server, e.g. the cluster head's, reached by tunnel
        lines.append(f"compare trials: open {uri} in a browser")
    else:
        lines.append(f"compare trials: mlflow ui --backend-store-uri {uri}   (serves on 127.0.0.1:5000); "
                     f"report: lsdseg report {results.folder}")
    return "\n".join(lines)


# --- `lsdseg sweeps`: the sweeps under a root, from their folders alone (sweep.json, best.json and the Optuna study
# file; no MLflow, no Ray). A folder made before verification existed is listed with its figure labelled
# selection-only: it was estimated on the seeds that chose its winner. ---------------------------------------------

def _finished_trials(layout: SweepLayout, name: str, study_uri: Optional[str] = None) -> str:
    """Search trials that ended (completed, pruned or failed), as the study records them; "?" while the study's
    database cannot be reached (the listing is of folders, and goes on)."""
    if study_uri is None and not layout.optuna_db.is_file():
        return "0"
    try:
        study = optuna.load_study(study_name=name, storage=layout.study_storage(study_uri))
    except KeyError:  # the sweep stopped before its search began
        return "0"
    except sqlalchemy.exc.OperationalError:
        return "?"
    warm = study.user_attrs.get("warm_start_trials", 0)  # copied in from earlier sweeps, not run here
    return str(sum(t.state.is_finished() for t in study.get_trials(deepcopy=False)) - warm)


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
    trials = f"{_finished_trials(layout, s.name, s.study_uri)}/{s.num_samples}"
    return f"{s.name:<28} {state.status:<11} {state.phase:<10} {trials:>7}  {_shipped(state.objective, best):<40} {state.started}"


def render_sweeps(root: Path) -> str:
    layouts = sweeps_under(root)
    if not layouts:
        return f"no sweeps under {root}/ (start one with `lsdseg sweep`)"
    head = f"{'name':<28} {'status':<11} {'phase':<10} {'trials':>7}  {'shipped':<40} started"
    return "\n".join([head, *(_row(layout) for layout in layouts)])
