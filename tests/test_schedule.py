"""A schedule of values (what Population Based Training returns) replays from scratch: each stretch trains
with its own values, continuing from the previous stretch's checkpoint, and every checkpoint knows the
lineage that produced it."""
from __future__ import annotations

import json

import pytest

from lsdseg import checkpoint
from lsdseg.checkpoint import latest_checkpoint
from lsdseg.config_io import to_dict
from lsdseg.runlayout import LINEAGE
from lsdseg.schedule import read_lineage, run_schedule

pytestmark = pytest.mark.unit

FIRST = {"optim.g_lr": 1e-4, "loss.g_adv": 0.1}
LATER = {"optim.g_lr": 7e-4, "loss.g_adv": 0.4}


def test_a_schedule_changes_values_at_its_step_and_records_its_lineage(tiny_cfg, tmp_path):
    base = to_dict(tiny_cfg(train={"iterations": 6, "eval_every": 2}))
    steps = []
    result = run_schedule(base, [(0, FIRST), (4, LATER)], {"train.out_dir": str(tmp_path / "r")}, lambda ev: steps.append(ev.step))
    assert result.status == "completed" and steps == [2, 4, 6]  # one report per evaluation, none repeated
    written = {p.name for p in (tmp_path / "r").glob("config*.yaml")}
    assert written == {"config.yaml", "config-resumed-at-4.yaml"}  # a second stretch, from the checkpoint at 4
    last = latest_checkpoint(tmp_path / "r")
    state = checkpoint.load(last)
    assert state["config"]["optim"]["g_lr"] == 7e-4 and state["config"]["loss"]["g_adv"] == 0.4
    assert all(g["lr"] == 7e-4 for g in state["optims"]["g"]["param_groups"])  # the optimizer trained with it
    assert read_lineage(last.parent) == [(0, FIRST), (4, LATER)]


def test_a_run_restored_from_another_inherits_its_lineage(tiny_cfg, tmp_path):
    """PBT's exploit: trial B continues from trial A's checkpoint with perturbed values."""
    base = to_dict(tiny_cfg(train={"iterations": 6, "eval_every": 2, "keep_checkpoints": 3}))
    run_schedule(base, [(0, FIRST)], {"train.out_dir": str(tmp_path / "a")}, lambda ev: None)
    donor = sorted((tmp_path / "a").glob("checkpoints/step_*/checkpoint.pt"))[1]  # step 4
    assert json.loads((donor.parent / LINEAGE).read_text()) == [[0, FIRST]]
    run_schedule(base, [(0, LATER)], {"train.out_dir": str(tmp_path / "b")}, lambda ev: None, resume=donor)
    assert read_lineage(latest_checkpoint(tmp_path / "b").parent) == [(0, FIRST), (4, LATER)]


def test_a_change_between_evaluations_is_refused(tiny_cfg, tmp_path):
    base = to_dict(tiny_cfg(train={"iterations": 6, "eval_every": 2}))
    with pytest.raises(ValueError, match="only at evaluations"):
        run_schedule(base, [(0, FIRST), (3, LATER)], {"train.out_dir": str(tmp_path / "r")}, lambda ev: None)
