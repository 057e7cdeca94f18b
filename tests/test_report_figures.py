"""The report's figures, tables and page from constructed records, an in-memory Optuna study and no MLflow:
the verification shows every held-out seed, importance is withheld below its minimum, the page needs no network."""
from __future__ import annotations

import math
import re
from types import SimpleNamespace

import optuna
import pytest
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from optuna.distributions import FloatDistribution

from lsdseg.sweep.record import TrialRecord
from lsdseg.sweep.report import build, study_figures, verification
from lsdseg.sweep.results import LookResult, Selection, SweepResults
from lsdseg.sweep.verify import decide

pytestmark = pytest.mark.unit

VERIFY = [1000, 1001, 1002]
LOOK = LookResult(1, VERIFY, 300, 0.025, {1000: 0.35, 1001: 0.34, 1002: 0.36}, {1000: 0.30, 1001: 0.28, 1002: 0.31},
                  decide({1000: 0.35, 1001: 0.34, 1002: 0.36}, {1000: 0.30, 1001: 0.28, 1002: 0.31}, 0.025, 0.0))


def _study(n: int) -> optuna.Study:
    """n completed trials whose score is set by `lr` alone; `beta` is noise."""
    study = optuna.create_study(direction="maximize")
    dists = {"lr": FloatDistribution(1e-4, 1e-2, log=True), "beta": FloatDistribution(0.5, 0.9)}
    for i in range(n):
        lr, beta = 10 ** (-4 + 2 * i / max(n - 1, 1)), 0.5 + 0.4 * ((i * 7) % n) / n
        score = 0.2 + 0.05 * (math.log10(lr) + 4)
        study.add_trial(optuna.trial.create_trial(params={"lr": lr, "beta": beta}, distributions=dists, value=score))
    return study


def test_verification_figure_pairs_each_held_out_seed():
    results = SimpleNamespace(looks=[LOOK], candidate=SimpleNamespace(number=7), candidate_label="trial 7", objective="target_miou")
    fig = verification.figure(results)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.lines) == len(VERIFY) and all(list(line.get_xdata()) == [0, 1] for line in ax.lines)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["default weights", "trial 7"]
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {f"seed {s}" for s in VERIFY}
    plt.close(fig)
    nothing = SimpleNamespace(looks=[LOOK], candidate=None, candidate_label="default weights", objective="target_miou")
    assert verification.figure(nothing).startswith("Not shown: nothing was verified")


def test_verification_table_gives_the_interval_and_the_decision():
    results = SimpleNamespace(looks=[LOOK], candidate=SimpleNamespace(number=7), objective="target_miou")
    (row,) = verification.look_rows(results)
    assert row["versus"] == "+5.3 [+3.9, +6.8] (3 seeds, 95 % interval)"
    assert row["candidate"] == ["35.0", "34.0", "36.0"] and row["verdict"].startswith("Shipped: the advantage")


def test_importance_below_the_minimum_names_both_numbers():
    said = study_figures.importance(_study(6))
    assert said == (f"Importance is not shown: 6 completed trials, fewer than the {study_figures.MIN_TRIALS} "
                    "it needs to be more than noise.")


def test_importance_from_enough_trials_is_a_bar_per_parameter_with_its_spread():
    fig = study_figures.importance(_study(12))
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert "12 completed trials" in ax.get_title()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["beta", "lr"]  # the most important on top
    widths = [bar.get_width() for bar in ax.patches]
    assert widths[1] > widths[0]
    plt.close(fig)


def test_parallel_coordinates_embed_a_plotly_div_without_a_cdn():
    fig = study_figures.parallel(_study(12))
    html = study_figures.embed(fig)
    assert 'class="plotly-graph-div"' in html and "Plotly.newPlot" in html
    assert "<script src" not in html.replace(" ", "") and "cdn" not in html.lower()
    assert list(fig.layout.xaxis.ticktext) == ["score (%)", "beta", "lr"]


def test_parallel_coordinates_drop_log_tick_labels_that_would_overlap():
    study = optuna.create_study(direction="maximize")
    dists = {"lr": FloatDistribution(1e-4, 1e-2, log=True)}
    for i, lr in enumerate([9.8e-4, 2e-3, 9e-3]):  # 9.8e-4 sits 1 % of the axis below the 1e-3 decade
        study.add_trial(optuna.trial.create_trial(params={"lr": lr}, distributions=dists, value=0.1 * i))
    ticks = [a.text for a in study_figures.parallel(study).layout.annotations if a.x == 1]
    assert "0.00098" in ticks and "0.009" in ticks and "0.001" not in ticks


class _Results(SimpleNamespace):
    """SweepResults' surface as write_report reads it, without MLflow or a sweep folder."""

    def ranked(self):
        return sorted(self.search, key=lambda t: -t.score)

    def best_checkpoint(self):
        return None

    def source_only_checkpoint(self):
        return None

    def source_only_per_class(self):
        return {"road": 0.7, "car": 0.3}

    objective = "target_miou"

    def text(self, score, signed=False):
        return SweepResults.text(self, score, signed)


def _record(number: int, score: float) -> TrialRecord:
    return TrialRecord(run_id=f"r{number}", ray_trial_id=f"t{number}", phase="search", number=number, seed=0,
                       status="completed", params={"lr": 0.001, "beta": 0.7}, history=((100, score - 0.02), (200, score + 0.01)),
                       scores=((100, score - 0.02), (200, score)), per_class={"road": 0.8, "car": 0.4})


@pytest.mark.parametrize("verified", [True, False])
def test_the_page_is_one_file_with_plotly_inlined_once(tmp_path, monkeypatch, verified):
    search = [_record(n, 0.30 + 0.01 * (n % 5)) for n in range(12)]
    logged = []
    selection = [Selection("default weights", 0, True, {0: 0.30, 1: 0.28}, None),
                 Selection("trial 4", 4, False, {0: 0.34, 1: 0.33}, None)]
    best_row = {"configuration": "trial 4" if verified else "default weights", "horizon": 300,
                "reason": "on look 1, for trial 4 the advantage ..." if verified else "the race kept the default weights",
                "checkpoint": {"how": "the last checkpoint", "phase": "verify", "seed": 1000, "step": 300, "test_miou": 0.33,
                               "val_miou": 0.34, "test_split": "synthetic/target_test", "test_images": 600}}
    results = _Results(
        folder=tmp_path, name="s<1>", parent_run_id="p", study=_study(12), searched=["beta", "lr"], search=search, trials=search,
        references={"source_only": 0.2}, best=search[4], default_weights=search[0], selection=selection,
        looks=[LOOK] if verified else [], candidate=search[4] if verified else None,
        candidate_label="trial 4" if verified else "default weights", best_row=best_row,
        settings=SimpleNamespace(smoothing=3, scheduler="asha"),
        state=SimpleNamespace(tracking_uri="sqlite://", search_iterations=None,
                              stopping_replay="Replayed, the rule would not have stopped trial 4."),
        client=SimpleNamespace(log_artifact=lambda run, path, folder: logged.append(path), log_batch=lambda run, metrics: None))
    monkeypatch.setattr(build, "SweepResults", lambda sweep: results)
    page = build.write_report("s", tmp_path / "report", examples=0).read_text()
    assert page.count("Plotly.newPlot") == 1 and len(re.findall(r"<script[^>]*\bsrc=", page)) == 0
    assert page.count(study_figures.plotly_js()[:200]) == 1  # plotly.js once, in the page itself
    assert "s&lt;1&gt;" in page and "mean target mIoU of the last 3 evaluations" in page and "best seen (oracle)" in page
    assert "would not have stopped trial 4" in page and page.count("How far to trust this") == 5 + verified  # examples: no checkpoint
    assert ("Shipped: the advantage" in page) == verified and ("Nothing was verified" in page) != verified
    assert "on synthetic/target_test (600 images nothing selected on)" in page
    assert (tmp_path / "report" / "parallel.html").is_file() and str(tmp_path / "report" / "parallel.html") in logged
