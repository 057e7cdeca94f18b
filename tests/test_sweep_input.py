"""Bad input to `lsdseg sweep` is one line, exit 1, found before anything starts: no sweep folder, no MLflow
store, no Ray. In process (tests/cli.py): a fresh interpreter would prove nothing more."""
from __future__ import annotations

import time

import pytest
from cli import invoke

pytestmark = pytest.mark.unit


def lsdseg(*args, cwd):
    return invoke(*args, cwd=cwd)


@pytest.mark.parametrize("args, message", [
    (["--more-seeds", "2"], "pass it with --resume DIR"),
    (["--more-seeds", "0"], "'--more-seeds': 0 is not in the range"),
    (["--more-seeds", "two"], "'--more-seeds': 'two' is not a valid integer"),
    (["--min-effect", "-1"], "bad sweep option min_effect"),
    (["--min-effect", "three"], "'--min-effect': 'three' is not a valid float"),
    (["--alpha", "0.7"], "bad sweep option alpha"),
    (["--margin", "-2"], "bad sweep option margin"),
    (["--verify-seeds", "-1"], "bad sweep option verify_seeds"),
    (["--selection-seeds", "0"], "bad sweep option selection_seeds"),
    (["--first-look", "0"], "bad sweep option first_look"),
    (["--first-look", "1.5"], "bad sweep option first_look"),
    (["--first-look", "half"], "'--first-look': 'half' is not a valid float"),
    (["--first-look", "0.5", "--scheduler", "asha"], "--first-look 0.5 shortens search trials, and --scheduler asha stops them"),
    (["--race-runs", "-1"], "bad sweep option race_runs"),
])
def test_bad_verification_settings_are_one_line_before_anything_starts(tmp_path, args, message):
    run = lsdseg("sweep", *args, cwd=tmp_path)
    lines = run.stderr.strip().splitlines()
    assert run.returncode != 0 and len(lines) == 1 and message in lines[0] and "Traceback" not in run.stderr
    assert not (tmp_path / "sweeps").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("args, message", [
    (["--space", "nosuch"], "unknown search space 'nosuch'"),
    (["--train.iterationz=3"], "unknown config key 'train.iterationz'"),
    (["--num-samples", "0"], "bad sweep option num_samples"),
    (["--warm-start", "nosuch"], "no sweep 'nosuch'"),
    (["--data.target_labels=false"], "train.objective=target_miou needs target labels"),  # the default objective
    (["--data.source.name=gta5", "--data.source.root=/no/such/dir"], "/no/such/dir not found"),  # checked as train does
    (["--tracking-uri", "foo://bar"], "MLflow store foo://bar cannot be reached"),
    (["--tracking-uri", "http://127.0.0.1:9"], "MLflow store http://127.0.0.1:9 cannot be reached"),  # nothing listens there
    (["--root", "/proc/x"], "--root /proc/x cannot be written (at /proc)"),
    (["--storage", "/proc/x/y"], "--storage /proc/x/y cannot be written (at /proc)"),
])
def test_bad_space_or_config_fails_before_ray_starts(tmp_path, args, message):
    start = time.monotonic()
    run = lsdseg("sweep", *args, cwd=tmp_path)
    assert run.returncode == 1 and message in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "sweeps").exists() and not (tmp_path / "mlflow.db").exists()
    assert time.monotonic() - start < 30  # no Ray start-up was paid


@pytest.mark.parametrize("body, message", [
    ("    trial.suggest_floaty('optim.d_lr', 1e-5, 1e-3)\n", "fails when it runs (AttributeError"),
    ("    import sys\n    sys.exit(0)\n", "fails when it runs (SystemExit"),
])
def test_a_space_that_breaks_when_it_runs_is_one_line(tmp_path, body, message):
    (tmp_path / "space.py").write_text("def space(trial):\n" + body)
    run = lsdseg("sweep", "--space", "space.py", cwd=tmp_path)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1 and message in lines[0] and not (tmp_path / "sweeps").exists()


def test_bad_space_file_range(tmp_path):
    (tmp_path / "space.py").write_text("def space(trial):\n    trial.suggest_float('optim.d_lr', 0.0, 1e-3, log=True)\n")
    run = lsdseg("sweep", "--space", "space.py", cwd=tmp_path)
    assert run.returncode == 1 and "is invalid" in run.stderr and not (tmp_path / "sweeps").exists()
