"""What goes with every run for reproducibility: git sha, versions, host facts."""
from __future__ import annotations

import os
import platform as host  # the standard library's, not this repo's source folder
import subprocess
from pathlib import Path

import torch

import lsdseg


def git_sha() -> str:
    """The commit of the code being run ('+dirty' with uncommitted changes), or 'unknown' outside git."""
    here = Path(lsdseg.__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True,
                               timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def git_diff() -> str:
    """The uncommitted changes to tracked files (`git diff HEAD`): with `git_sha`, the code exactly; "" if
    clean or outside git."""
    here = Path(lsdseg.__file__).resolve().parent
    try:
        return subprocess.run(["git", "diff", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def run_info(device: torch.device) -> dict[str, str]:
    return {
        "git_sha": git_sha(),
        "lsdseg": lsdseg.__version__,
        "torch": torch.__version__,
        "python": host.python_version(),
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
    }


def _cpu_name() -> str:
    """The processor's model name (Linux), else what the platform module knows."""
    info = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
             if line.startswith("model name")] if info.is_file() else []
    return names[0] if names else host.processor() or "unknown"


def provenance(threads: int | None = None) -> dict[str, object]:
    """What a benchmark result carries so that it can be traced: the commit and whether the tree was dirty,
    the versions, the threads torch used, and the machine."""
    sha = git_sha()
    return {"commit": sha.removesuffix("+dirty"), "dirty": sha.endswith("+dirty"), "torch": torch.__version__,
            "python": host.python_version(), "threads": threads if threads is not None else torch.get_num_threads(),
            "machine": f"{host.machine()}, {_cpu_name()}, {os.cpu_count()} cores"}
