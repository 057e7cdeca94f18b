"""The sweep's closing summary: the search's top trials, the confirmation on fresh seeds, the winner,
whether early stopping endangered it, and where everything is."""
from __future__ import annotations

import math

from lsdseg.objectives import DIRECTION, UNITS
from lsdseg.sweep.confirm import RULES, Confirmed, Paired, other_rule
from lsdseg.sweep.results import SweepResults


def _short(name: str) -> str:
    return name.split(".", 1)[-1]


def _pc(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 100:.1f}"


def _interval(results: SweepResults, p: Paired | None) -> str:
    """The paired difference in the objective's units; the verdict reads the oriented one (higher: better)."""
    if p is None:
        return "-"
    verdict = "better" if p.low > 0 else "worse" if p.high < 0 else "not distinguishable"
    low, high = sorted((results.text(p.low, signed=True), results.text(p.high, signed=True)), key=float)
    return f"{results.text(p.mean, signed=True)} [{low}, {high}] ({verdict})"


def _search(results: SweepResults, top: int) -> list[str]:
    rows = results.ranked()[:top]
    keys = results.searched
    k = results.state["settings"]["smoothing"]
    head = f"{'trial':>5} {'status':<11} {'iters':>5} {'score':>6} {'mIoU':>5} {'oracle':>6}  " + " ".join(f"{_short(p):>10}" for p in keys)
    lines = [f"search: {len(results.search)} trials, top {len(rows)} by score (mean of the last {k} evaluations of "
             f"{results.objective}: {UNITS[results.objective]}); mIoU: target mIoU (%) at the last evaluation; "
             "oracle: the best evaluation seen, not a result", head]
    for r in rows:
        values = " ".join(f"{r.params[p]:>10.3g}" if isinstance(r.params.get(p), float) else f"{str(r.params.get(p, '-')):>10}" for p in keys)
        lines.append(f"{r.number!s:>5} {r.status:<11} {r.steps:>5} {results.text(r.score):>6} {_pc(r.miou):>5} {_pc(r.best_miou):>6}  {values}")
    return lines


def _spread(results: SweepResults, c: Confirmed) -> str:
    return f"{results.text(c.mean)} ± {results.text(c.std * DIRECTION[results.objective])}"  # a spread is never negative


def _confirmation(results: SweepResults, confirmed: list[Confirmed]) -> list[str]:
    win = results.winner
    lines = [f"confirmation: each configuration on seeds {results.seeds} (score: {UNITS[results.objective]}); paired "
             "difference to the default weights on the same seeds with its 95 % interval",
             f"  {'configuration':<16} {'mean':>6} {'std':>6} {'worst':>6}  {'seeds':<22} vs default weights"]
    for c in sorted(confirmed, key=lambda c: c.criterion("mean"), reverse=True):
        mark = "*" if win is not None and c.candidate.rank == win.candidate.rank else " "
        seeds = " ".join(results.text(v) for _, v in sorted(c.scores.items()))
        spread = "-" if math.isnan(c.std) else results.text(c.std * DIRECTION[results.objective])  # a spread is never negative
        lines.append(f"{mark} {c.candidate.label:<16} {results.text(c.mean):>6} {spread:>6} {results.text(c.worst):>6}  "
                     f"{seeds:<22} {_interval(results, c.versus_defaults)}")
    return lines


def render(results: SweepResults, top: int = 10) -> str:
    lines = _search(results, top)
    if results.confirmation:
        lines += _confirmation(results, results.confirmation)
    else:
        lines.append("confirmation: off (--confirm-top 0): the winner is one seed's score, which the seed spread can explain")
    win, best = results.winner, results.best
    if win is not None:
        select = results.state["settings"]["select"]
        lines.append(f"winner: {win.candidate.label} ({RULES[select]} over {len(win.scores)} seeds: {results.text(win.mean)})")
        alternative = other_rule(results.confirmation, select)
        if alternative is not None:
            other, alt = alternative
            lines.append(f"  --select {other} ({RULES[other]}) would declare {alt.candidate.label}: {_spread(results, alt)} "
                         f"against the winner's {_spread(results, win)}")
        if win.candidate.changes:
            steps = ", ".join(str(step) for step, _ in win.candidate.changes)
            lines.append(f"  a PBT schedule: its values change at iterations {steps} (best.json); best_config.yaml holds its first values")
    elif best is not None:
        lines.append(f"winner: {best.label} (score {results.text(best.score)}, one seed)")
    if results.state.get("stopping_replay"):
        lines.append(f"early stopping: {results.state['stopping_replay']}")
    refs = results.references
    if refs:
        kinds = {"source_only": "final mIoU", "default_weights": f"score, trial {results.state.get('defaults_number')}"}
        shown = {k: results.text(v) if k == "default_weights" else _pc(v) for k, v in refs.items()}  # a score, or a final mIoU
        lines.append("references: " + ", ".join(f"{k.replace('_', ' ')} {shown[k]} ({kinds.get(k, '')})" for k in refs)
                     + " on the search's training seed")
    checkpoint = results.best_checkpoint()
    if checkpoint is not None:
        lines.append(f"best checkpoint: {checkpoint}   (config: {results.layout.best_config})")
    lines.append(f"sweep folder: {results.folder}   (log of Ray, MLflow, Optuna: {results.layout.log})")
    uri = results.state["tracking_uri"]
    if uri.startswith("http"):  # a tracking server, e.g. the cluster head's, reached by tunnel
        lines.append(f"compare trials: open {uri} in a browser")
    else:
        lines.append(f"compare trials: mlflow ui --backend-store-uri {uri}   (serves on 127.0.0.1:5000); report: lsdseg report {results.folder}")
    return "\n".join(lines)
