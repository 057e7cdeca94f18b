"""`lsdseg report`: one self-contained HTML page (PNGs embedded) plus the PNGs, logged to the sweep's
parent MLflow run under `report/`."""
from __future__ import annotations

import base64
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from jinja2 import Environment, PackageLoader, select_autoescape
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from lsdseg.data.base import DataError
from lsdseg.sweep.report import figures
from lsdseg.sweep.report.examples import target_examples
from lsdseg.sweep.results import SweepResults


@dataclass(frozen=True)
class Section:
    title: str
    file: str
    png: Optional[str]  # base64, or None with a note saying why the figure is missing
    note: str = ""


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 100:.1f}"


def _param(text: Optional[str]) -> str:
    try:
        return f"{float(text):.3g}"
    except (TypeError, ValueError):
        return "-" if text is None else text


def _leaderboard(results: SweepResults) -> list[dict]:
    best = results.best
    return [{"number": t.number, "status": t.status, "steps": t.steps, "miou": _percent(t.miou), "best_miou": _percent(t.best_miou),
             "params": {p: _param(t.params.get(p)) for p in results.searched}, "best": best is not None and t.run_id == best.run_id}
            for t in results.ranked()]


def _per_class_columns(results: SweepResults) -> dict[str, dict[str, float]]:
    best, defaults = results.best, results.default_weights
    columns = {f"best ({best.label})": best.per_class} if best else {}
    if defaults is not None and defaults is not best:
        columns["default weights (trial 0)"] = defaults.per_class
    columns["source-only"] = results.source_only_per_class()
    return columns


def _examples(results: SweepResults, count: int) -> Figure | str:
    best = results.best_checkpoint()
    if best is None:
        return "the sweep has no best checkpoint"
    try:
        return figures.examples(*target_examples(best, results.source_only_checkpoint(), count))
    except DataError as err:  # e.g. a real dataset's folder not mounted on this machine
        return f"the target validation images cannot be read ({err})"


def _save(title: str, file: str, made: Figure | str, out: Path) -> Section:
    if isinstance(made, str):
        return Section(title, file, None, made)
    made.savefig(out / file, dpi=110, bbox_inches="tight")
    plt.close(made)
    return Section(title, file, base64.b64encode((out / file).read_bytes()).decode())


def write_report(sweep: str | Path, out: Optional[Path] = None, examples: int = 4) -> Path:
    results = SweepResults(sweep)
    out = Path(out) if out is not None else results.folder / "report"
    out.mkdir(parents=True, exist_ok=True)
    with plt.style.context("ggplot"):  # Optuna's plots switch to this style; the others match them
        made = [
            ("Optimisation history", "history.png", figures.history(results.trials)),
            ("mIoU curves of the top trials", "curves.png", figures.curves(results.ranked())),
            ("Hyperparameter importance (fANOVA)", "importance.png", figures.importance(results.study)),
            ("Parallel coordinates", "parallel.png", figures.parallel(results.study)),
            ("Per-class IoU: best trial, default weights, source-only", "per_class.png", figures.per_class(_per_class_columns(results))),
            ("Target-domain examples", "examples.png", _examples(results, examples)),
        ]
        sections = [_save(title, file, fig, out) for title, file, fig in made]
    env = Environment(loader=PackageLoader("lsdseg.sweep.report", "."), autoescape=select_autoescape(default=True))
    references = ", ".join(f"{k.replace('_', ' ')} {_percent(v)}" for k, v in results.references.items()) or "none"
    page = env.get_template("template.html").render(
        name=results.name, folder=results.folder, parent_run_id=results.parent_run_id, tracking_uri=results.state["tracking_uri"],
        generated=time.strftime("%Y-%m-%d %H:%M"), references=references, params=results.searched,
        trials=_leaderboard(results), best=results.best.number if results.best else None, sections=sections,
    )
    html = out / "report.html"
    html.write_text(page)
    for path in [html, *(out / s.file for s in sections if s.png)]:
        results.client.log_artifact(results.parent_run_id, str(path), "report")
    return html
