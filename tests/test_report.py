"""`lsdseg report`, `export` and `predict` on one real sweep (local Ray, sqlite MLflow, Optuna study),
shared by the module: the report opened in headless Chromium, what was shipped retrained, images segmented.
"""
from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image
from sweeps import children_of, lsdseg, tiny
from venvs import clean_env, linked_venv

from lsdseg import checkpoint
from lsdseg.config_io import load_config, to_dict

pytestmark = pytest.mark.e2e

PNGS = ("verification", "validators", "history", "curves", "per_class", "examples")  # parallel coordinates: plotly, interactive
# Debian's chromium, headless, with nothing that reaches out to the network on its own
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


SPACE = ("def space(trial):\n"
         "    trial.suggest_float('optim.f_lr', 2e-2, 5e-2, log=True)\n"
         "    if trial.suggest_categorical('optim.f_lr_decay', [1.0, 0.1]) < 1.0:\n"
         "        trial.suggest_int('optim.f_lr_decay_every', 200, 1000, step=100)\n")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, cache_dir):
    """4 trials of 8 iterations, no early stopping, a race and a verification on 2 held-out seeds, a
    source-only reference. It selects by a label-free validator, target entropy, as a sweep on a real target
    would; F learns 10^7 times faster in every searched configuration than under the default weights (whose
    F's learning rate, 1e-9, lies outside the space: no search trial runs them), so a candidate is verified.
    The space has a conditional parameter."""
    cwd = tmp_path_factory.mktemp("report")
    (cwd / "space.py").write_text(SPACE)
    # tinier nets all predict one class
    small = [arg for arg in tiny(cache_dir, iterations=8, eval_every=4) if not arg.startswith("--model.")]
    run = lsdseg("sweep", "--name", "r1", "--space", "space.py", "--optim.f_lr=1e-9", "--num-samples", "4", "--selection-seeds", "2",
                 "--race-runs", "2", "--verify-seeds", "2", "--alpha", "0.25", "--references", "--objective", "entropy", *small, cwd=cwd)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return cwd


@pytest.fixture(scope="module")
def chromium():
    """/usr/bin/chromium, installed from Debian's archive when missing (CI starts from a clean machine)."""
    path = shutil.which("chromium")
    if path is None:
        for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
            subprocess.run(cmd, check=True, capture_output=True, timeout=900)
        path = shutil.which("chromium")
    assert path, "chromium is not installed and apt-get could not install it"
    return path


def _blank(png: bytes) -> bool:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32)
    return pixels.std() < 5 or len(np.unique(pixels)) < 16


@pytest.mark.slow
@pytest.mark.system  # installs Debian's chromium where it is missing
def test_report_renders_in_chromium_with_every_figure(sweep, chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    run = lsdseg("report", "r1", cwd=sweep)
    assert run.returncode == 0, run.stderr[-3000:]
    html = sweep / "sweeps" / "r1" / "report" / "report.html"
    assert f"report: {html}" in run.stdout
    text = html.read_text()
    leaderboard = text.split("<h2>Leaderboard</h2>", 1)[1].split("</table>", 1)[0]
    assert leaderboard.count("<tr") == 1 + 4 and leaderboard.count("(candidate)") == 1  # header + every search trial
    assert "each a first look of 4 iterations" in text
    verification = text.split("<h2>Selection and verification</h2>", 1)[1].split("<h2>", 1)[0]
    race, looks = verification.split("</table>", 2)[:2]
    assert "(optimistic)" in race and "default weights" in race and race.count("(candidate)") == 1
    assert looks.count("<tr") == 1 + 1 and "1000, 1001" in looks  # one look, on the held-out seeds
    assert "nothing selected on" in verification and "synthetic/target_test" in verification
    assert "References: source only" in text
    trust = text.split("<h2>Which validator to trust</h2>", 1)[1].split("</table>", 1)[0]
    assert trust.count("<tr") == 1 + 5 and "This sweep selected by <code>entropy</code>" in trust  # every validator
    # 4 trials are too few for importance: the page says so instead of drawing noise
    assert "Importance is not shown: 4 completed trials, fewer than the 10" in text
    assert text.count("How far to trust this") == len(PNGS) + 1  # + parallel coordinates
    for name in PNGS:
        assert not _blank((html.parent / f"{name}.png").read_bytes()), f"{name}.png is blank"

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(html.as_uri(), wait_until="load")
        sources = page.eval_on_selector_all("img", "els => els.map(e => [e.naturalWidth, e.src])")
        plots = page.eval_on_selector_all(".js-plotly-plot", "els => els.map(e => e.getBoundingClientRect().height)")
        page.screenshot(path=tmp_path / "report.png", full_page=True)
        browser.close()
    assert errors == []
    assert len(sources) == len(PNGS) and all(width > 0 for width, _ in sources)
    assert len(plots) == 1 and plots[0] > 100  # the interactive parallel-coordinates plot was drawn
    for _, src in sources:  # the page is self-contained: every figure is embedded, none is blank
        assert src.startswith("data:image/png;base64,") and not _blank(base64.b64decode(src.split(",", 1)[1]))
    assert not _blank((tmp_path / "report.png").read_bytes())

    state = json.loads((sweep / "sweeps" / "r1" / "sweep.json").read_text())
    logged = {a.path for a in MlflowClient(state["tracking_uri"]).list_artifacts(state["parent_run_id"], "report")}
    assert {f"report/{name}.png" for name in PNGS} | {"report/report.html", "report/parallel.html"} <= logged


@pytest.mark.slow
def test_the_sweep_minimised_target_entropy(sweep):
    """Each trial told Optuna minus the mean entropy of its last 3 evaluations (higher is better), every run
    logged every validator at every evaluation, and the parent run names its objective."""
    import optuna

    state = json.loads((sweep / "sweeps" / "r1" / "sweep.json").read_text())
    client = MlflowClient(state["tracking_uri"])
    assert client.get_run(state["parent_run_id"]).data.tags["objective"] == "entropy"
    runs = children_of(client, state["parent_run_id"], state["experiment_id"])
    study = optuna.load_study(study_name="r1", storage=f"sqlite:///{sweep}/sweeps/r1/optuna.db")
    for run in runs:
        assert {f"val/{name}" for name in ("source_miou", "entropy", "im", "snd", "dev")} <= set(run.data.metrics)
        entropy = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "val/entropy"), key=lambda m: m.step)]
        # a first look of 4 iterations (a search trial: 4), continued on its seed by the race (8), or a full run (4 and 8)
        length = state["search_iterations"]
        first = length if run.data.tags.get("continues") == "search" else 0
        last = length if run.data.tags["phase"] == "search" else 8
        assert length == 4 and len(entropy) == (last - first) // 4
        if run.data.tags["phase"] == "search":
            value = study.trials[int(run.data.tags["optuna_trial_number"])].value
            assert value == pytest.approx(-sum(entropy[-3:]) / len(entropy[-3:]))


@pytest.mark.slow
def test_export_then_train_reproduces_the_best_trial(sweep, tmp_path):
    folder = sweep / "sweeps" / "r1"
    run = lsdseg("export", str(folder), "--out", str(tmp_path / "best.yaml"), "--register", "lsdseg-r1", cwd=sweep)
    assert run.returncode == 0, run.stderr[-3000:]
    best = json.loads((folder / "best.json").read_text())
    assert best["shipped"] == "candidate"
    trained = checkpoint.load(best["checkpoint"]["path"])["config"]

    exported = (tmp_path / "best.yaml").read_text()
    (tmp_path / "best.yaml").write_text("mine")
    again = lsdseg("export", str(folder), "--out", str(tmp_path / "best.yaml"), cwd=sweep)
    assert again.returncode == 1 and "best.yaml already exists: pass --overwrite" in again.stderr
    assert (tmp_path / "best.yaml").read_text() == "mine"
    assert lsdseg("export", str(folder), "--out", str(tmp_path / "best.yaml"), "--overwrite", cwd=sweep).returncode == 0
    assert (tmp_path / "best.yaml").read_text() == exported

    retrain = lsdseg("train", "--config", str(tmp_path / "best.yaml"), cwd=tmp_path)
    assert retrain.returncode == 0, retrain.stderr[-3000:]
    out = tmp_path / re.search(r"run folder: .*/(runs/\S+)", retrain.stdout).group(1)
    config = to_dict(load_config(out / "config.yaml"))
    assert {**config, "train": {**config["train"], "out_dir": None}} == {**trained, "train": {**trained["train"], "out_dir": None}}
    summary = json.loads((out / "summary.json").read_text())
    client = MlflowClient(json.loads((folder / "sweep.json").read_text())["tracking_uri"])
    shipped_run = client.get_run(best["checkpoint"]["run_id"])
    assert summary["miou"] == pytest.approx(shipped_run.data.metrics["miou"], abs=1e-6)  # same config, seed and data: same result

    version = client.get_model_version("lsdseg-r1", "1")
    assert version.tags["sweep"] == "r1" and version.tags["shipped"] == "candidate"
    assert float(version.tags["test_miou"]) == pytest.approx(best["checkpoint"]["test_miou"], abs=1e-4)
    assert json.loads(version.tags["verified_seeds"]) == [1000, 1001]
    assert str(client.get_model_version_by_alias("lsdseg-r1", "champion").version) == "1"
    # the registered version is a model that loads and segments an image array, at the image's size, where lsdseg is
    # not installed: a new virtualenv holding only the model's logged requirements (and so no tracking URI leaks
    # into later tests' sweeps)
    env = {**clean_env(), "MLFLOW_TRACKING_URI": client.tracking_uri}
    where = "import mlflow; print(mlflow.pyfunc.get_model_dependencies('models:/lsdseg-r1@champion'))"
    logged = subprocess.run([sys.executable, "-c", where], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env, check=True)
    requirements = Path(logged.stdout.strip().splitlines()[-1]).read_text().split()
    assert all("==" in r for r in requirements) and {r.split("==")[0] for r in requirements} >= {"torch", "numpy", "mlflow"}
    python = linked_venv(tmp_path / "venv", requirements)
    script = ("import importlib.util, mlflow, numpy as np\n"
              "assert importlib.util.find_spec('lsdseg') is None\n"
              "model = mlflow.pyfunc.load_model('models:/lsdseg-r1@champion')\n"
              "ids = model.predict(np.random.default_rng(0).integers(0, 256, (2, 50, 70, 3), dtype=np.uint8))\n"
              "shape = list(model.metadata.signature.inputs.to_dict()[0]['tensor-spec']['shape'])\n"
              "example = model.input_example.shape\n"
              "print(ids.shape, ids.dtype, int(ids.max()) < 19, shape, example)\n")
    loaded = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.strip().splitlines()[-1] == "(2, 50, 70) uint8 True [-1, -1, -1, 3] (1, 32, 48, 3)"
    # the checkpoint, and the schedule of values that trained it (lsdseg.sweep.schedule)
    assert [a.path for a in client.list_artifacts(version.run_id, "best_checkpoint")] == ["best_checkpoint/checkpoint.pt",
                                                                                        "best_checkpoint/lineage.json"]


@pytest.mark.slow
def test_every_trial_run_has_the_same_numeric_params(sweep):
    """MLflow's compare plots drop a run that lacks a selected param, and split a column mixing types."""
    client = MlflowClient(f"sqlite:///{sweep}/mlflow.db")
    state = json.loads((sweep / "sweeps" / "r1" / "sweep.json").read_text())
    runs = children_of(client, state["parent_run_id"], state["experiment_id"])
    assert len({frozenset(r.data.params) for r in runs}) == 1
    assert "optim.f_lr_decay_every" in runs[0].data.params  # conditional: sampled by only some trials
    searched = [k for k in runs[0].data.params if k.startswith(("loss.", "optim."))]
    assert all(float(r.data.params[k]) >= 0 for r in runs for k in searched)
    assert len({frozenset(r.data.metrics) for r in runs}) == 1


@pytest.mark.slow
def test_predict_writes_a_segmentation_and_an_overlay_per_image(sweep, tmp_path, cache_dir):
    best = json.loads((sweep / "sweeps" / "r1" / "best.json").read_text())["checkpoint"]["path"]
    images = sorted(cache_dir.glob("*/target_val/*_image.png"))[:3]
    run = lsdseg("predict", "--checkpoint", best, *map(str, images), "--out", str(tmp_path / "pred"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    written = sorted(p.name for p in (tmp_path / "pred").iterdir())
    assert written == sorted(f"{i.stem}_{kind}.png" for i in images for kind in ("overlay", "seg"))
    for image in images:
        seg = Image.open(tmp_path / "pred" / f"{image.stem}_seg.png")
        assert seg.size == Image.open(image).size and seg.mode == "RGB"
    # outputs already there are refused, untouched, before the model loads; --overwrite replaces them
    (tmp_path / "pred" / f"{images[0].stem}_seg.png").write_bytes(b"mine")
    again = lsdseg("predict", "--checkpoint", best, *map(str, images), "--out", str(tmp_path / "pred"), cwd=tmp_path)
    lines = again.stderr.strip().splitlines()
    assert again.returncode == 1 and len(lines) == 1 and "6 of the outputs already exist" in lines[0] and "--overwrite" in lines[0]
    assert (tmp_path / "pred" / f"{images[0].stem}_seg.png").read_bytes() == b"mine"
    forced = lsdseg("predict", "--checkpoint", best, *map(str, images), "--out", str(tmp_path / "pred"), "--overwrite", cwd=tmp_path)
    assert forced.returncode == 0 and Image.open(tmp_path / "pred" / f"{images[0].stem}_seg.png").size == Image.open(images[0]).size


@pytest.mark.slow
def test_report_and_export_without_their_store_or_folder_are_one_line(sweep, tmp_path):
    """`report` when mlflow.db is gone must not create an empty one; `export` into a missing folder."""
    missing = lsdseg("export", "r1", "--out", str(tmp_path / "no" / "such" / "best.yaml"), cwd=sweep)
    assert missing.returncode == 1 and "does not exist" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    moved = tmp_path / "mlflow.db"
    shutil.move(sweep / "mlflow.db", moved)
    try:
        run = lsdseg("report", "r1", cwd=sweep)
        assert run.returncode == 1 and "MLflow store" in run.stderr and "is gone" in run.stderr and "Traceback" not in run.stderr
        assert not (sweep / "mlflow.db").exists()
    finally:
        shutil.move(moved, sweep / "mlflow.db")
