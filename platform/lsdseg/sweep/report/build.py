"""`lsdseg report`: one self-contained HTML page (PNGs embedded, plotly.js inlined once, no network
needed), the PNGs and a standalone parallel.html beside it, all logged to the sweep's parent MLflow run
under `report/`. Every figure carries a caption saying how far it can be trusted.
"""
from __future__ import annotations

import base64
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from mlflow.entities import Metric
from plotly import graph_objects as go

from lsdseg.data.base import DataError
from lsdseg.sweep.report import figures, study_figures, validators, verification
from lsdseg.sweep.report.fmt import number, percent
from lsdseg.sweep.results import SweepResults
from lsdseg.sweep.trust import assess_all, caveat

REPORT_ARTIFACTS = "report"  # the folder of the parent MLflow run the page and its figures go to


@dataclass(frozen=True)
class Section:
    title: str
    file: str
    caption: str
    png: Optional[str] = None  # base64
    html: Optional[Markup] = None  # an interactive figure: the <div> plotly wrote, the only HTML not escaped
    note: str = ""  # the sentence shown instead of a missing figure


def _leaderboard(results: SweepResults) -> list[dict[str, Any]]:
    """Search trials by score; the oracle figure is kept but labelled as such in the template."""
    candidate = results.candidate.number if results.candidate else None
    return [{"number": f"{t.number}{' (defaults)' if t.defaults else ''}", "status": t.status, "steps": t.steps,
             "score": results.text(t.score),
             "miou": percent(t.miou), "best_miou": percent(t.best_miou), "params": {p: number(t.params.get(p)) for p in results.searched},
             "winner": candidate is not None and t.number == candidate} for t in results.ranked()]


def _per_class_columns(results: SweepResults) -> dict[str, dict[str, float]]:
    shipped, defaults = results.best, results.default_weights
    columns = {f"shipped ({shipped.label})": shipped.per_class} if shipped else {}
    if defaults is not None and (shipped is None or defaults.run_id != shipped.run_id):
        columns[f"default weights ({defaults.label})"] = defaults.per_class
    columns["source-only"] = results.source_only_per_class()
    return columns


def _examples(results: SweepResults, count: int) -> Figure | str:
    best = results.best_checkpoint()
    if best is None:
        return "Not shown: the sweep has no shipped checkpoint."
    try:
        return figures.examples(*figures.target_examples(best, results.source_only_checkpoint(), count))
    except DataError as err:  # e.g. a real dataset's folder not mounted on this machine
        return f"Not shown: the target validation images cannot be read ({err})."


def _save(title: str, file: str, caption: str, made: Figure | go.Figure | str, out: Path) -> Section:
    """Write a figure beside the page and embed it: a PNG, or plotly's <div> plus a standalone page."""
    if isinstance(made, str):
        return Section(title, file, caption, note=made)
    if isinstance(made, go.Figure):
        study_figures.write_standalone(made, out / file)
        return Section(title, file, caption, html=Markup(study_figures.embed(made)))
    made.savefig(out / file, dpi=110, bbox_inches="tight")
    plt.close(made)
    return Section(title, file, caption, png=base64.b64encode((out / file).read_bytes()).decode())


def _verification(results: SweepResults, out: Path) -> dict[str, Any]:
    """The selection and verification section: the race, each look, the decision, and the figure."""
    seeds, race = verification.race_rows(results)
    row = results.best_row or {}
    return {"figure": _save("Verification on held-out seeds", "verification.png", verification.CAPTION, verification.figure(results), out),
            "seeds": seeds, "race": race, "looks": verification.look_rows(results), "candidate": results.candidate_label,
            "shipped": row.get("configuration", "-"), "reason": row.get("reason", "the sweep has not finished"),
            "checkpoint": row.get("checkpoint"), "horizon": row.get("horizon")}


def _validators(results: SweepResults, out: Path) -> dict[str, Any]:
    """The "Which validator to trust" section; its figures also go to the parent run as metrics."""
    trusts = assess_all(results.trials, results.settings.smoothing)
    now = int(time.time() * 1000)
    metrics = [Metric(f"trust/{t.name}/{key}", value, now, 0) for t in trusts
               for key, value in (("run_spearman", t.run_spearman), ("spearman", t.spearman), ("kendall", t.kendall),
                                  ("regret_within", t.regret_within), ("regret_across", t.regret_across),
                                  ("random_regret", t.random_regret)) if not math.isnan(value)]
    if metrics:
        results.client.log_batch(results.parent_run_id, metrics=metrics)
    return {"figure": _save("Validators against target mIoU", "validators.png", validators.CAPTION, validators.figure(results.trials), out),
            "rows": validators.rows(trusts), "baseline": validators.baseline(results.trials), "caveat": caveat(trusts),
            "objective": results.objective, "absent": None if trusts else validators.UNLABELLED}


def write_report(sweep: str | Path, out: Optional[Path] = None, examples: int = 4) -> Path:
    results = SweepResults(sweep)
    out = Path(out) if out is not None else results.layout.report
    out.mkdir(parents=True, exist_ok=True)
    ranked = results.ranked()
    with plt.style.context("ggplot"):
        verified = _verification(results, out)
        trust = _validators(results, out)
        made = [
            ("Optimisation history", "history.png", figures.CAPTIONS["history"], figures.history(results.search, results.objective)),
            ("mIoU and score of the top trials", "curves.png", figures.CAPTIONS["curves"],
             figures.curves(ranked, objective=results.objective)),
            ("Hyperparameter importance (fANOVA)", "importance.png", study_figures.IMPORTANCE_CAPTION,
             study_figures.importance(results.study)),
            ("Parallel coordinates", "parallel.html", study_figures.PARALLEL_CAPTION,
             study_figures.parallel(results.study, results.objective)),
            ("Per-class IoU: the shipped run, default weights, source-only", "per_class.png", figures.CAPTIONS["per_class"],
             figures.per_class(_per_class_columns(results))),
            ("Target-domain examples", "examples.png", figures.CAPTIONS["examples"], _examples(results, examples)),
        ]
        sections = [_save(*args, out) for args in made]
    env = Environment(loader=PackageLoader("lsdseg.sweep.report", "."), autoescape=select_autoescape(default=True))
    settings = results.settings
    page = env.get_template("template.html").render(
        name=results.name, folder=results.folder, parent_run_id=results.parent_run_id, tracking_uri=results.state.tracking_uri,
        generated=time.strftime("%Y-%m-%d %H:%M"), params=results.searched, trials=_leaderboard(results),
        references=", ".join(f"{k.replace('_', ' ')} {results.text(v) if k == 'default_weights' else percent(v)}"
                             for k, v in results.references.items()) or "none",
        smoothing=settings.smoothing, first_look=results.state.search_iterations, scheduler=settings.scheduler,
        replay=results.state.stopping_replay,
        verification=verified, trust=trust, sections=sections,
        plotly_js=Markup(study_figures.plotly_js()) if any(s.html for s in sections) else None,
    )
    html = out / "report.html"
    html.write_text(page)
    figure_files = [s.file for s in [verified["figure"], trust["figure"], *sections] if s is not None and not s.note]
    for path in [html, *(out / f for f in figure_files)]:
        results.client.log_artifact(results.parent_run_id, str(path), REPORT_ARTIFACTS)
    return html
