"""Bad input to `lsdseg predict`, `report` and `export` is one line, exit 1, nothing written; the per-class
figure's order. In process (tests/cli.py)."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from cli import invoke
from PIL import Image

pytestmark = pytest.mark.unit


def lsdseg(*args, cwd):
    return invoke(*args, cwd=cwd)


@pytest.mark.parametrize("args, message", [
    (["--checkpoint", "weights.pt", "a.png"], "weights.pt is not an lsdseg checkpoint"),
    (["--checkpoint", "garbage.pt", "a.png"], "garbage.pt cannot be read"),
    (["--checkpoint", "weights.pt", "missing.png"], "image missing.png not found"),
    (["--checkpoint", "weights.pt", "garbage.pt"], "garbage.pt is not an image"),
    (["--checkpoint", "weights.pt", "a.png", "cut.png"], "cut.png is not an image Pillow can read to its end"),
    (["--checkpoint", "weights.pt", "bomb.png"], "bomb.png is too large to decode safely"),
])
def test_predict_bad_input_is_one_line(tmp_path, args, message):
    Image.new("RGB", (16, 8)).save(tmp_path / "a.png")
    noisy = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(noisy, "PNG")
    (tmp_path / "cut.png").write_bytes(noisy.getvalue()[: len(noisy.getvalue()) // 2])  # a truncated download
    (tmp_path / "bomb.png").write_bytes(_png_header(100_000, 100_000))
    torch.save({"weights": torch.zeros(2)}, tmp_path / "weights.pt")  # a real torch file, of another kind
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    run = lsdseg("predict", *args, "--out", "out", cwd=tmp_path)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1 and message in lines[0] and "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (a decompression bomb's first bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", b"")


@pytest.mark.parametrize("out", ["a.png/out", "/proc/x", "/proc/self/x/y"])
def test_predict_into_a_folder_that_cannot_be_made_is_one_line(tmp_path, out):
    Image.new("RGB", (16, 8)).save(tmp_path / "a.png")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "weights.pt")
    run = lsdseg("predict", "--checkpoint", "weights.pt", "a.png", "--out", out, cwd=tmp_path)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1 and f"--out {out} cannot be written" in lines[0]


@pytest.mark.parametrize("command", [["report", "nosuch"], ["export", "nosuch", "--out", "x.yaml"]])
def test_unknown_sweep_is_one_line(tmp_path, command):
    run = lsdseg(*command, cwd=tmp_path)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1 and "no sweep 'nosuch'" in lines[0]


@pytest.mark.parametrize("alias", ["latest", "v3", "my champion", ""])
def test_a_bad_alias_is_one_line_before_the_sweep_is_read(tmp_path, alias):
    run = lsdseg("export", "nosuch", "--out", "x.yaml", "--register", "m", "--alias", alias, cwd=tmp_path)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1 and f"--alias {alias!r}" in lines[0] and "Traceback" not in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_per_class_figure_names_the_classes_in_label_order():
    from lsdseg.sweep.report.figures import per_class

    fig = per_class({"best": {"car": 0.5, "road": 0.9}, "source-only": {"road": 0.4, "sky": 0.2}, "empty": {}})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["road", "sky", "car"]  # Cityscapes train-id order
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["best", "source-only"]


@pytest.mark.parametrize("content", ["", "{not json", '{"settings": {}}', "[]"])
@pytest.mark.parametrize("command", [["sweep", "--resume", "sweeps/c1"], ["report", "sweeps/c1"],
                                     ["export", "sweeps/c1", "--out", "x.yaml"]])
def test_a_corrupt_sweep_json_is_one_line(tmp_path, content, command):
    (tmp_path / "sweeps" / "c1").mkdir(parents=True)
    (tmp_path / "sweeps" / "c1" / "sweep.json").write_text(content)
    run = lsdseg(*command, cwd=tmp_path)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1 and "sweep.json" in lines[0] and "Traceback" not in run.stderr
    assert (tmp_path / "sweeps" / "c1" / "sweep.json").read_text() == content and not (tmp_path / "x.yaml").exists()


OLD_STATE = ('{"settings": {"name": "old1", "num_samples": 8}, "tracking_uri": "sqlite:///x.db", "experiment_id": "1", '
             '"parent_run_id": "p", "status": "finished", "phase": "done", "started": "2026-11-30 10:00:00", "confirm": {}}')


def test_a_folder_made_before_verification_is_listed_as_selection_only_and_refused_elsewhere(tmp_path):
    folder = tmp_path / "sweeps" / "old1"
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(OLD_STATE)
    (folder / "best.json").write_text('{"params": {}, "score": 0.2, "confirmed": {"mean": 0.192, "scores": {"0": 0.2}}}')
    listed = lsdseg("sweeps", cwd=tmp_path)
    assert listed.returncode == 0 and "old1" in listed.stdout and "19.2 (selection-only: made before verification)" in listed.stdout
    for command in (["report", "old1"], ["export", "old1", "--out", "x.yaml"], ["sweep", "--resume", str(folder)]):
        run = lsdseg(*command, cwd=tmp_path)
        lines = run.stderr.strip().splitlines()
        assert run.returncode == 1 and len(lines) == 1 and "selection-only" in lines[0] and "Traceback" not in run.stderr
