"""The method installs without the platform: its requirements name no Ray, Optuna or MLflow, its platform
commands say in one line which extra to install, and the platform's Ray requirement is a range."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib
from cli import invoke

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PLATFORM = ("ray", "optuna", "mlflow", "psycopg", "plotly", "matplotlib", "jinja2")


def _name(requirement: str) -> str:
    return requirement.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower()


def test_the_base_install_has_no_platform_library():
    assert not {_name(r) for r in PROJECT["dependencies"]} & set(PLATFORM)
    assert set(PLATFORM) <= {_name(r) for r in PROJECT["optional-dependencies"]["sweep"]}
    assert "lsdseg-platform[sweep]" in PROJECT["optional-dependencies"]["cluster"]


def test_ray_is_a_range_of_releases():
    [ray] = [r for r in PROJECT["optional-dependencies"]["sweep"] if _name(r) == "ray"]
    low, high = ray.split(">=")[1].split(",<")
    assert tuple(map(int, low.split("."))) < (2, 60) and int(high.split(".")[0]) >= 3  # more than one minor release


@pytest.mark.parametrize("command", [["sweep", "--smoke-test"], ["sweeps"], ["report", "x"], ["export", "x", "--out", "y.yaml"]])
def test_a_platform_command_without_the_extra_is_one_line(tmp_path, monkeypatch, command):
    for name in ("ray", "optuna", "mlflow"):
        monkeypatch.setitem(sys.modules, name, None)  # as if never installed: find_spec answers None
    run = invoke(*command, cwd=tmp_path)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1 and "pip install 'lsdseg-platform[sweep]'" in lines[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e
def test_the_wheel_takes_no_top_level_name_but_lsdseg(tmp_path):
    """The repository keeps search_spaces/ and trainables/ at its top; the wheel holds them inside lsdseg, so
    that a user's own `trainables` or `search_spaces` is never shadowed (nor shadows them)."""
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
                            str(ROOT)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("lsdseg_platform-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"lsdseg", wheel.name.split("-py3")[0] + ".dist-info"}
    assert {"lsdseg/trainables/lsdseg_trainable.py", "lsdseg/search_spaces/full.py", "lsdseg/configs/sweep.yaml"} <= set(names)
