"""Whether a folder the user named (an output folder, a sweep root, a storage folder) can be made and
written, found out before any work starts. Permission bits do not say it for root, nor for /proc, a
read-only mount or a full disk, so it is tried: a folder made and removed in the nearest one that exists."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional


def unwritable(folder: Path) -> Optional[Path]:
    """None if `folder` (there or not yet) can be made and written; else where that fails: its nearest
    existing ancestor, which is no folder or refuses a new entry."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), folder)
    if not existing.is_dir():
        return existing
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".lsdseg-probe-"))
    except OSError:
        return existing
    return None
