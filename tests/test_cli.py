"""The `lsdseg` command as a user runs it: smoke training, eval of its checkpoint, one-line errors, Ctrl-C.
In process (click's CliRunner) where a process of its own proves nothing more; signals and loader workers
get one (the e2e tier)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from cli import invoke
from PIL import Image


def lsdseg(*args, cwd):
    """In process (tests/cli.py); what needs a process of its own uses `lsdseg_process`."""
    return invoke(*args, cwd=cwd)


def lsdseg_process(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "lsdseg.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.unit
@pytest.mark.slow
def test_smoke_train_then_eval(tmp_path, cache_dir):
    run = lsdseg("train", "--smoke-test", f"--data.cache_dir={cache_dir}", "--train.threads=1", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "target mIoU (8 classes) at the last evaluation (iteration 2)" in run.stdout
    assert "selected by target_miou" in run.stdout and "(an oracle figure: picked on target labels)" in run.stdout
    ckpt = next(line.split(": ", 1)[1] for line in run.stdout.splitlines() if line.startswith("checkpoint: "))
    assert ckpt.startswith(str(tmp_path / "runs"))  # default run folder under the working directory
    assert "note:" not in run.stderr

    ev = lsdseg("eval", "--checkpoint", ckpt, cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr
    assert "checkpoint step 2" in ev.stdout and "road" in ev.stdout


@pytest.mark.unit
@pytest.mark.parametrize("args, message", [
    (["train", "--train.iterationz=5"], "unknown config key 'train.iterationz'"),
    (["train", "--loss.f_adv=lots"], "bad value for loss.f_adv"),
    (["train", "stray"], "unexpected argument 'stray'"),
    (["train", "--train.iterations"], "override '--train.iterations' has no value"),
    (["train", "train.iterationz=5"], "did you mean train.iterations?"),
    (["train", "--config", "missing.yaml"], "not found"),
    (["train", "--data.source.name=gta5", "--train.iterations=1"], "data.source.root is not set"),
    (["train", "--data.source.name=gta5", "--data.source.root=/no/such/gta"], "/no/such/gta not found"),
    (["eval", "--checkpoint", "missing.pt"], "checkpoint missing.pt not found"),
])
def test_bad_input_is_one_line_without_traceback(tmp_path, args, message):
    run = lsdseg(*args, cwd=tmp_path)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in run.stderr


@pytest.mark.unit
def test_a_vgg16_without_pretrained_weights_says_so_before_it_starts(tmp_path):
    """Random VGG-16 weights are legal but far from the paper's ImageNet start: one line says so and how to
    give the file (here the run then stops at a missing dataset, which is checked next)."""
    run = lsdseg("train", "--config", "vgg16", "--model.pretrained=null", "--data.target_val.name=cityscapes",
                 "--data.target_val.root=/no/such/cityscapes", cwd=tmp_path)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 2 and "Traceback" not in run.stderr
    assert lines[0] == ("note: model.pretrained is not set: F (VGG-16) starts from random weights, not the paper's ImageNet "
                        "ones; give a local copy of torchvision's vgg16-397923af.pth with --model.pretrained=PATH")
    assert "/no/such/cityscapes not found" in lines[1]


@pytest.mark.unit
def test_wrong_kind_of_checkpoint(tmp_path):
    (tmp_path / "other.pt").write_bytes(b"not a checkpoint")
    run = lsdseg("eval", "--checkpoint", "other.pt", cwd=tmp_path)
    assert run.returncode == 1 and "cannot be read" in run.stderr and len(run.stderr.strip().splitlines()) == 1


@pytest.mark.unit
def test_config_prints_every_key(tmp_path):
    run = lsdseg("config", "--loss.g_rec=0.5", cwd=tmp_path)
    assert run.returncode == 0 and "g_rec: 0.5" in run.stdout and "f_bias_lr_mult" in run.stdout


def _gta5_tree(root, label_for):
    """A tiny GTA5 tree; `label_for(index)` gives each label image (24000 opens GTA5's validation split)."""
    from PIL import Image

    for folder in ("images", "labels"):
        (root / folder).mkdir(parents=True)
    for index in (1, 2, 3, 24000):
        Image.new("RGB", (96, 48)).save(root / "images" / f"{index:05d}.png")
        label_for(index).save(root / "labels" / f"{index:05d}.png")


GTA5_RUN = ["--train.iterations=4", "--train.eval_every=4", "--data.batch_size=2", "--data.crop_height=32", "--data.crop_width=64"]


@pytest.mark.e2e
def test_a_data_error_in_a_loader_worker_is_one_line(tmp_path):
    """With loader processes (the vgg16 config sets 4), a label whose header is fine but whose pixels are cut
    off is found in a worker, and torch wraps its traceback around the message: the user still gets one line."""
    from PIL import Image

    root = tmp_path / "gta"
    _gta5_tree(root, lambda index: Image.fromarray(np.random.default_rng(index).integers(0, 34, (48, 96), np.uint8), "L"))
    label = root / "labels" / "00002.png"
    label.write_bytes(label.read_bytes()[: label.stat().st_size // 2])  # truncated: only decoding finds it
    run = lsdseg_process("train", "--data.source.name=gta5", f"--data.source.root={root}", "--data.num_workers=2", *GTA5_RUN, cwd=tmp_path)
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error")]
    assert run.returncode == 1 and "Traceback" not in run.stderr and len(errors) == 1
    assert "cannot read label" in errors[0] and "00002.png" in errors[0]


@pytest.mark.unit
@pytest.mark.parametrize("bad, message", [
    (lambda index: Image.new("RGB" if index == 3 else "L", (96, 48), 7), "00003.png is a 'RGB' image"),  # a colour label
    (lambda index: Image.new("L", (96, 40) if index == 24000 else (96, 48), 7), "labels/24000.png is 96x40 but its image"),
])
def test_a_bad_label_anywhere_is_found_before_anything_starts(tmp_path, bad, message):
    """From the files' headers, before the benchmark is generated or a run folder made: a wrong kind of label
    in the training split, a label of the wrong size in the validation split."""
    _gta5_tree(tmp_path / "gta", bad)
    run = lsdseg("train", "--data.source.name=gta5", f"--data.source.root={tmp_path / 'gta'}", f"--data.cache_dir={tmp_path / 'cache'}",
                 *GTA5_RUN, cwd=tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and message in run.stderr
    assert not (tmp_path / "cache").exists() and not (tmp_path / "runs").exists()


@pytest.mark.unit
def test_a_train_that_cannot_start_leaves_no_run_folder(tmp_path):
    run = lsdseg("train", "--data.source.name=gta5", "--data.source.root=/no/such/gta", cwd=tmp_path)
    assert run.returncode == 1 and "/no/such/gta not found" in run.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.unit
def test_smoke_test_yields_to_explicit_overrides_and_a_run_folder_resumes(tmp_path, cache_dir):
    run = lsdseg("train", "--smoke-test", f"--data.cache_dir={cache_dir}", "--train.iterations=4", "--train.out_dir=r",
                 "--train.keep_checkpoints=2", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "(iteration 4)" in run.stdout  # --train.iterations=4 won over the smoke test's 2
    longer = lsdseg("train", "--smoke-test", f"--data.cache_dir={cache_dir}", "--train.iterations=6", "--resume", "r", cwd=tmp_path)
    assert longer.returncode == 0, longer.stderr
    assert "(iteration 6)" in longer.stdout and f"run folder: {tmp_path / 'r'}" in longer.stdout  # in the same folder
    assert (tmp_path / "r" / "config-resumed-at-4.yaml").is_file()


@pytest.mark.unit
def test_eval_with_an_override_that_does_not_fit_the_checkpoint_is_one_line(tmp_path, cache_dir):
    run = lsdseg("train", "--smoke-test", f"--data.cache_dir={cache_dir}", "--train.out_dir=r", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    ckpt = next((tmp_path / "r").glob("checkpoints/step_*/checkpoint.pt"))
    ev = lsdseg("eval", "--checkpoint", str(ckpt), "--model.small_width=8", cwd=tmp_path)
    lines = ev.stderr.strip().splitlines()
    assert ev.returncode == 1 and len(lines) == 1 and "does not fit the model config" in lines[0] and "Traceback" not in ev.stderr


TINY_RUN = ["--data.batch_size=2", "--data.crop_height=32", "--data.crop_width=64", "--data.synthetic_size=8", "--data.val_limit=4",
            "--data.source_val_limit=4", "--model.small_width=4", "--model.g_width=4", "--model.d_width=4", "--train.threads=1"]


def _ctrl_c(cwd, args, ready, timeout=120):
    """`lsdseg train ARGS`, sent SIGINT once `ready()` holds: (exit status, stderr's last line, stderr)."""
    # SIGINT as a terminal delivers it: a shell that started these tests in the background made the signal
    # ignored, and Python then installs no KeyboardInterrupt handler in the child
    proc = subprocess.Popen([sys.executable, "-m", "lsdseg.cli", "train", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "ended before it could be interrupted: " + proc.stderr.read()[-2000:]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, [line for line in err.splitlines() if line.strip()][-1], err


@pytest.mark.e2e
def test_ctrl_c_while_the_benchmark_is_generated_keeps_nothing_and_says_so(tmp_path):
    cache = tmp_path / "cache"
    status, last, err = _ctrl_c(tmp_path, [f"--data.cache_dir={cache}", "--data.synthetic_size=2000"],
                                lambda: any(cache.glob("*.tmp/*/*.png")))
    assert status == 130 and "Traceback" not in err
    assert last == ("interrupted before anything started: nothing was kept (the built-in benchmark is written whole or not at all); "
                    "run the command again")
    assert not (tmp_path / "runs").exists() and [p for p in cache.iterdir() if p.is_dir() and not p.name.endswith(".tmp")] == []


@pytest.mark.e2e
@pytest.mark.slow
def test_ctrl_c_during_training_names_what_is_kept_and_the_resume_that_continues(tmp_path, cache_dir):
    out = tmp_path / "run"
    args = [*TINY_RUN, f"--data.cache_dir={cache_dir}", f"--train.out_dir={out}", "--train.eval_every=2"]
    status, last, err = _ctrl_c(tmp_path, [*args, "--train.iterations=100000"], lambda: (out / "metrics.jsonl").exists())
    assert status == 130 and "Traceback" not in err
    found = re.fullmatch(r"interrupted at iteration (\d+): the checkpoint of iteration (\d+) is kept; "
                         r"continue with the same command and --resume (.+)", last)
    assert found and found.group(3) == str(out) and int(found.group(1)) >= int(found.group(2)) >= 2
    resumed = lsdseg_process("train", *args, f"--train.iterations={int(found.group(2)) + 2}", "--resume", str(out), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"run folder: {out}" in resumed.stdout


@pytest.mark.e2e
@pytest.mark.slow
def test_ctrl_c_before_the_first_checkpoint_leaves_no_run_folder(tmp_path, cache_dir):
    out = tmp_path / "run"
    args = [*TINY_RUN, f"--data.cache_dir={cache_dir}", f"--train.out_dir={out}", "--train.eval_every=100000", "--train.iterations=100000"]
    status, last, err = _ctrl_c(tmp_path, args, lambda: (out / "config.yaml").exists())
    assert status == 130 and "Traceback" not in err
    assert re.fullmatch(r"interrupted at iteration \d+, before the first checkpoint \(every train.eval_every=100000 iterations\): "
                        r"nothing was kept; run the command again", last)
    assert not out.exists()


@pytest.mark.unit
@pytest.mark.parametrize("form", [["--train.iterations=3", "--loss.f_adv=0.2"], ["--train.iterations", "3", "--loss.f_adv", "0.2"],
                                  ["train.iterations=3", "loss.f_adv=0.2"]])
def test_overrides_in_each_form_users_bring(tmp_path, form):
    run = lsdseg("config", *form, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "iterations: 3" in run.stdout and "f_adv: 0.2" in run.stdout


@pytest.mark.unit
@pytest.mark.parametrize("command", ["train", "sweep", "config"])
def test_help_shows_the_override_forms_and_the_sections(tmp_path, command):
    text = " ".join(lsdseg(command, "--help", cwd=tmp_path).stdout.split())
    assert "--section.key=value, --section.key value, or section.key=value" in text
    assert "Sections: data, model, loss, optim, train" in text


@pytest.mark.unit
def test_train_logs_to_the_mlflow_store_it_is_given(tmp_path, monkeypatch, cache_dir):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "mine")
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    run = lsdseg("train", "--smoke-test", "--tracking-uri", uri, f"--data.cache_dir={cache_dir}", "--train.iterations=4", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    client = MlflowClient(uri)
    [logged] = client.search_runs([client.get_experiment_by_name("mine").experiment_id])
    assert logged.info.status == "FINISHED" and logged.data.tags["status"] == "completed"
    assert logged.data.params["train.iterations"] == "4" and logged.data.params["loss.f_adv"]
    assert [m.step for m in client.get_metric_history(logged.info.run_id, "miou")] == [2, 4]


@pytest.mark.unit
def test_train_without_mlflow_refuses_a_given_uri_and_notes_one_from_the_environment(tmp_path, monkeypatch, cache_dir):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if the sweep extra were not installed
    given = lsdseg("train", "--smoke-test", "--tracking-uri", "sqlite:///m.db", cwd=tmp_path)
    assert given.returncode == 1 and len(given.stderr.strip().splitlines()) == 1 and "needs MLflow" in given.stderr
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///m.db")
    from_env = lsdseg("train", "--smoke-test", f"--data.cache_dir={cache_dir}", cwd=tmp_path)
    assert from_env.returncode == 0 and "note: MLFLOW_TRACKING_URI is set but MLflow is not installed" in from_env.stderr
    assert not (tmp_path / "m.db").exists()
