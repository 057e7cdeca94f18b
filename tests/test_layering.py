"""The method (data, models, losses, metrics, training loop, CLI start-up) runs without Ray, MLflow, Optuna."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_method_imports_no_platform_library():
    code = ("import sys, lsdseg.train, lsdseg.evaluate, lsdseg.cli, lsdseg.data, lsdseg.models, lsdseg.losses, lsdseg.metrics;"
            "print(sorted(m for m in ('ray', 'mlflow', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_no_platform_package_shadows_the_standard_library():
    out = subprocess.run([sys.executable, "-c", "import platform; print(platform.system())"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "Linux"


# Each module imported first, after every lsdseg module is forgotten; the libraries below it (torch, ...) stay
# loaded, which changes nothing about an import order inside lsdseg and saves a fresh interpreter per module.
FIRST = """
import importlib, pathlib, sys, lsdseg
root = pathlib.Path(lsdseg.__file__).parent
names = sorted("lsdseg." + ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
               for p in root.rglob("*.py") if "sweep" not in p.parts)
failed = []
for name in names:
    for loaded in [m for m in sys.modules if m == "lsdseg" or m.startswith("lsdseg.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as err:
        failed.append(f"{name}: {err!r}")
print(len(names), failed)
"""


def test_every_method_module_imports_first():
    """Each module of the method imported first: an import cycle between two of them (lsdseg.metrics and
    lsdseg.data once) breaks only the import order a user happens to use."""
    out = subprocess.run([sys.executable, "-c", FIRST], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert int(out[0]) > 20 and out[1].strip() == "[]"
