"""run_training end to end on the built-in benchmark (tiny): resume exactness, divergence, modes, guards."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from lsdseg import checkpoint
from lsdseg.data import synthetic, train_dataset
from lsdseg.train import ResumeError, run_training


def _losses(out_dir):
    return [json.loads(line)["losses"] for line in open(f"{out_dir}/metrics.jsonl")]


@pytest.mark.unit
@pytest.mark.slow
def test_resumed_run_continues_exactly(tiny_cfg, tmp_path):
    straight = tiny_cfg(train={"out_dir": str(tmp_path / "straight")})
    full = run_training(straight)

    first = run_training(replace(straight, train=replace(straight.train, iterations=2, out_dir=str(tmp_path / "resumed"))))
    resumed = run_training(replace(straight, train=replace(straight.train, out_dir=str(tmp_path / "resumed"))),
                           resume=first.history[-1].checkpoint)

    assert resumed.step == full.step == 4
    assert _losses(tmp_path / "resumed") == _losses(tmp_path / "straight")  # same losses at steps 2 and 4
    assert resumed.miou == full.miou
    a = checkpoint.load(full.history[-1].checkpoint)["nets"]
    b = checkpoint.load(resumed.history[-1].checkpoint)["nets"]
    assert all(torch.equal(a[n][k], b[n][k]) for n in a for k in a[n])
    # the first leg's records stay; the resumed leg adds its own
    run = tmp_path / "resumed"
    assert {"run.json", "run-resumed-at-2.json", "config.yaml", "config-resumed-at-2.yaml"} <= {p.name for p in run.iterdir()}
    assert json.loads((run / "run.json").read_text())["resumed_from"] is None
    assert "git_sha" in json.loads((run / "run-resumed-at-2.json").read_text())


@pytest.mark.unit
def test_how_often_a_run_evaluates_does_not_change_its_training(tiny_cfg, tmp_path):
    """Evaluation draws no training randomness: the weights after 4 iterations are the same whether the run
    evaluated at 2 and 4 or at 4 only (a loader drawing from torch's global RNG broke this)."""
    often = run_training(tiny_cfg(train={"out_dir": str(tmp_path / "often"), "eval_every": 2}))
    once = run_training(tiny_cfg(train={"out_dir": str(tmp_path / "once"), "eval_every": 4}))
    assert [h.step for h in often.history] == [2, 4] and [h.step for h in once.history] == [4]
    a = checkpoint.load(often.history[-1].checkpoint)["nets"]
    b = checkpoint.load(once.history[-1].checkpoint)["nets"]
    assert all(torch.equal(a[n][k], b[n][k]) for n in a for k in a[n])


@pytest.mark.unit
def test_reports_each_evaluation_with_a_checkpoint(tiny_cfg):
    reports = []
    result = run_training(tiny_cfg(), report=reports.append)
    assert [r.step for r in reports] == [2, 4] and result.status == "completed"
    last = reports[-1]
    assert 0.0 <= last.miou <= 1.0 and set(last.per_class_iou) == {"road", "sidewalk", "building", "pole", "vegetation", "sky",
                                                                   "person", "car"}
    assert {"loss_d", "loss_g", "loss_f", "loss_f_src_seg"} <= set(last.losses)
    state = checkpoint.load(last.checkpoint)
    assert state["step"] == 4 and set(state["nets"]) == {"f", "g", "d"} and set(state["optims"]) == {"f", "g", "d"}
    assert state["config"]["train"]["seed"] == 0


@pytest.mark.unit
def test_nan_loss_ends_the_run_as_diverged(tiny_cfg):
    result = run_training(tiny_cfg(faults={"explode_at": 3}))
    assert result.status == "diverged" and result.step == 3
    assert "at iteration 3" in result.message
    assert [h.step for h in result.history] == [2]


@pytest.mark.unit
@pytest.mark.parametrize("mode, nets", [("source_only", {"f"}), ("target_oracle", {"f"})])
def test_supervised_modes_share_the_code_path(tiny_cfg, mode, nets):
    result = run_training(tiny_cfg(train={"mode": mode}))
    assert result.status == "completed"
    assert set(checkpoint.load(result.history[-1].checkpoint)["nets"]) == nets


@pytest.mark.unit
def test_target_labels_never_enter_lsd_training(tiny_cfg, monkeypatch):
    cfg = tiny_cfg()
    read = synthetic.read_label

    def guarded(path):
        assert "target_train" not in str(path), "a target training label was read"
        return read(path)

    monkeypatch.setattr(synthetic, "read_label", guarded)
    target = train_dataset(cfg.data.target, cfg.data, "target", labelled=False)
    assert "label" not in target[(0, 1)]
    assert run_training(cfg).status == "completed"


@pytest.mark.unit
def test_refuses_to_overwrite_a_finished_run(tiny_cfg):
    cfg = tiny_cfg(train={"iterations": 2})
    run_training(cfg)
    with pytest.raises(ResumeError, match="already holds a run"):
        run_training(cfg)


@pytest.mark.unit
def test_resume_with_another_model_is_refused(tiny_cfg, tmp_path):
    first = run_training(tiny_cfg(train={"iterations": 2}))
    other = tiny_cfg(model={"g_width": 8}, train={"out_dir": str(tmp_path / "other")})
    with pytest.raises(ResumeError, match="another model config"):
        run_training(other, resume=first.history[-1].checkpoint)


@pytest.mark.unit
def test_resume_on_other_data_is_refused_but_a_moved_dataset_is_not(tiny_cfg, tmp_path):
    from dataclasses import replace

    cfg = tiny_cfg(train={"iterations": 2, "eval_every": 2})
    run_training(cfg)
    checkpoint = next((tmp_path / "run").glob("checkpoints/step_*/checkpoint.pt"))
    longer = tiny_cfg(train={"iterations": 4, "eval_every": 2})
    other = replace(longer, data=replace(longer.data, crop_width=48))
    with pytest.raises(ResumeError, match="other data .data.crop_width differ"):
        run_training(other, resume=checkpoint)
    moved = replace(longer, data=replace(longer.data, num_workers=1))  # how the data is read may change
    assert run_training(moved, resume=checkpoint).step == 4


@pytest.mark.unit
def test_a_checkpoint_with_flipped_bytes_is_refused(tiny_cfg, tmp_path):
    """One bit flipped inside the largest tensor's bytes: torch still loads the file, the digest does not match."""
    import struct
    import zipfile

    run_training(tiny_cfg(train={"iterations": 2, "eval_every": 2}))
    path = next((tmp_path / "run").glob("checkpoints/step_*/checkpoint.pt"))
    assert checkpoint.load(path)["step"] == 2
    with zipfile.ZipFile(path) as archive:
        entry = max(archive.infolist(), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[entry.header_offset + 26: entry.header_offset + 30])
    data[entry.header_offset + 30 + name_length + extra_length + entry.file_size // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(checkpoint.CheckpointError, match="is damaged"):
        checkpoint.load(path)


@pytest.mark.e2e  # torch.compile's inductor builds C++ kernels: minutes on 2 cores
@pytest.mark.slow
def test_a_compiled_run_trains_as_the_eager_one_and_writes_plain_checkpoints(tiny_cfg, tmp_path):
    """train.compile (torch.compile of F, G and D, here with inductor on the CPU): the same losses up to
    kernel rounding (without dropout, whose random stream differs when compiled), and checkpoints that an
    eager run (or eval, predict) loads as they are."""
    eager = run_training(tiny_cfg(train={"out_dir": str(tmp_path / "eager")}, model={"dropout": 0.0}))
    compiled = run_training(tiny_cfg(train={"out_dir": str(tmp_path / "compiled"), "compile": True}, model={"dropout": 0.0}))
    for a, b in zip(_losses(tmp_path / "eager"), _losses(tmp_path / "compiled"), strict=False):
        assert a.keys() == b.keys()
        assert all(b[k] == pytest.approx(a[k], rel=2e-3, abs=1e-4) for k in a), (a, b)
    plain = checkpoint.load(eager.history[-1].checkpoint)["nets"]
    state = checkpoint.load(compiled.history[-1].checkpoint)["nets"]
    assert {n: set(v) for n, v in state.items()} == {n: set(v) for n, v in plain.items()}  # no "_orig_mod." keys
    more = tiny_cfg(train={"out_dir": str(tmp_path / "compiled"), "iterations": 6}, model={"dropout": 0.0})
    assert run_training(more, resume=compiled.history[-1].checkpoint).step == 6


@pytest.mark.unit
def test_a_trial_given_a_gpu_it_cannot_see_fails_instead_of_training_on_the_cpu():
    from lsdseg.trainables.lsdseg_trainable import NoVisibleGPU, check_gpu

    if torch.cuda.is_available():
        pytest.skip("this machine's torch sees a GPU")
    with pytest.raises(NoVisibleGPU, match="Ray gave this trial 0.5 GPU but torch .* sees no CUDA device"):
        check_gpu(0.5, "auto")
    check_gpu(0.5, "cpu")  # asked for the CPU knowingly
    check_gpu(0, "auto")  # no GPU given: auto is the CPU
