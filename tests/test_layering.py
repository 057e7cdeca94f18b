"""The method (data, models, losses, metrics, training loop, CLI start-up) runs without Ray, MLflow, Optuna."""
from __future__ import annotations

import subprocess
import sys


def test_method_imports_no_platform_library():
    code = ("import sys, lsdseg.train, lsdseg.evaluate, lsdseg.cli, lsdseg.data, lsdseg.models, lsdseg.losses, lsdseg.metrics;"
            "print(sorted(m for m in ('ray', 'mlflow', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_no_platform_package_shadows_the_standard_library():
    out = subprocess.run([sys.executable, "-c", "import platform; print(platform.system())"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "Linux"
