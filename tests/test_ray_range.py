"""The lowest Ray release the sweep extra accepts runs a sweep, is interrupted, and resumes it to the end:
the code uses Ray Tune's public API only. That Ray is installed into a folder of its own (from the package
index, as pip would) and put first on the path of the sweep's processes; nothing else changes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from sweeps import check_invariants, lsdseg, tiny, wait_for_metrics

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]


def lowest_ray() -> str:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["sweep"]
    [ray] = [r for r in extra if r.startswith("ray[")]
    return ray.split(">=")[1].split(",")[0]


@pytest.fixture(scope="module")
def old_ray(tmp_path_factory):
    version = lowest_ray()
    target = tmp_path_factory.mktemp(f"ray-{version}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), f"ray=={version}.*"],
                   check=True, capture_output=True, timeout=600)
    env = {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    found = subprocess.run([sys.executable, "-c", "import ray; print(ray.__version__)"], env={**os.environ, **env},
                           capture_output=True, text=True, check=True).stdout.strip()
    assert found.split(".")[:2] == version.split(".")[:2]
    return env


def test_the_lowest_supported_ray_sweeps_and_resumes(old_ray, tmp_path, cache_dir):
    driver = lsdseg("sweep", "--name", "low", "--num-samples", "3", "--verify-seeds", "1", *tiny(cache_dir, 12, 4),
                    cwd=tmp_path, wait=False, env=old_ray)
    wait_for_metrics(driver, tmp_path / "mlflow.db")
    driver.send_signal(signal.SIGINT)
    out, _ = driver.communicate(timeout=120)
    assert driver.returncode == 130, out[-3000:]
    resumed = lsdseg("sweep", "--resume", str(tmp_path / "sweeps" / "low"), cwd=tmp_path, env=old_ray)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    outcomes = check_invariants(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "sweeps" / "low", 3, 12, 4)
    assert len(outcomes["completed"]) == 3 and "shipped:" in resumed.stdout
