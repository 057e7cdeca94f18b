"""docs/results.md is exactly what the committed data under bench/results/ gives: a figure in the docs can
always be traced to a data file and the commit that produced it."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_the_results_page_is_regenerated_from_its_data():
    sys.path.insert(0, str(BENCH))
    import make_docs

    assert make_docs.DOC.read_text() == make_docs.render(), "run python bench/make_docs.py and commit docs/results.md"
