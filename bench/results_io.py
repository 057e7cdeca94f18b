"""The one place that knows bench/results/: a benchmark's JSON goes there through `save`, with what traces it
(commit, dirty flag, torch, threads, machine), so that docs/results.md can name the file and the commit."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

RESULTS = Path(__file__).resolve().parent / "results"


def save(name: str, report: dict[str, Any], threads: Optional[int] = None, stamp: Optional[str] = None) -> Path:
    """bench/results/<name>.json, or bench/results/<name>/<stamp>.json for a benchmark that keeps each run."""
    from lsdseg.runinfo import provenance

    path = RESULTS / name / f"{stamp}.json" if stamp else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**report, **provenance(threads)}, indent=2))
    return path
