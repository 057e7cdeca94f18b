"""A new virtualenv that holds only given requirements and what they depend on: where a user would load a model
the project logged, without the project.

Nothing is downloaded (no network here, and torch's wheels are gigabytes): each distribution of the
requirements' closure is linked from this interpreter's installed files, its metadata included, and pip
(`--no-index`) then checks that the requirements, exact pins included, are met by what the virtualenv holds.
"""
from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
import venv
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def _closure(requirements: list[str]) -> dict[str, md.Distribution]:
    found: dict[str, md.Distribution] = {}
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        if name not in found:
            found[name] = dist = md.distribution(name)
            todo += [(Requirement(r), "") for r in dist.requires or []]
        todo += [(Requirement(r), e) for e in req.extras for r in found[name].requires or []]
    return found


def linked_venv(path: Path, requirements: list[str]) -> Path:
    """The python of a new virtualenv at `path` holding exactly `requirements`' closure."""
    venv.create(path, with_pip=False, symlinks=True)
    python = path / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], check=True,
                               capture_output=True, text=True).stdout.strip())
    for dist in _closure(requirements).values():
        for top in {f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..", "__pycache__")}:
            if not (site / top).exists():  # namespace folders (nvidia/) are shared by several distributions
                (site / top).symlink_to(dist.locate_file(top))
    env = {**clean_env(), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", *requirements],
                         capture_output=True, text=True, env=env)
    assert pip.returncode == 0 and "Successfully installed" not in pip.stdout, pip.stdout + pip.stderr
    return python


def clean_env() -> dict[str, str]:
    """This process's environment without what would let another interpreter find this one's packages."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")} | {"PYTHONNOUSERSITE": "1"}
