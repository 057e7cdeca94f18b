"""Shared fixtures: tiny configs so unit tests run in seconds on 2 CPU cores."""
from __future__ import annotations

import pytest
import torch

from lsdseg.config_io import with_overrides

TINY = {
    "data": {"batch_size": 2, "crop_height": 32, "crop_width": 64, "synthetic_size": 8, "val_limit": 4},
    "model": {"small_width": 4, "g_width": 4, "d_width": 4},
    "train": {"iterations": 4, "eval_every": 2, "threads": 1},
}


@pytest.fixture(autouse=True)
def _one_thread():
    """Two OpenMP threads on a busy 2-core machine stall each other; tests pin one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One built-in benchmark cache for the whole session (generated once, a few seconds)."""
    return tmp_path_factory.mktemp("benchmark-cache")


@pytest.fixture
def tiny_cfg(tmp_path, cache_dir):
    def make(**sections):
        tree = {k: dict(v) for k, v in TINY.items()}
        tree["data"]["cache_dir"] = str(cache_dir)
        tree["train"]["out_dir"] = str(tmp_path / "run")
        for section, values in sections.items():
            tree.setdefault(section, {}).update(values)
        return with_overrides(tree)
    return make


TIERS = ("unit", "e2e", "system")


def pytest_collection_modifyitems(config, items):
    """Every test belongs to one tier (pyproject.toml's markers): `pytest -m unit` must not miss one, nor run
    one that starts Ray or changes the machine."""
    untiered = [item.nodeid for item in items if not any(item.get_closest_marker(t) for t in TIERS)]
    if untiered:
        raise pytest.UsageError(f"{len(untiered)} tests have no tier marker ({', '.join(TIERS)}), e.g. {untiered[0]}")
