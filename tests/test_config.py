"""Config layering and validation: defaults < YAML < overrides; unknown keys and bad values are one-line errors."""
from __future__ import annotations

import dataclasses

import pytest

from lsdseg.config import Config
from lsdseg.config_io import ConfigError, dump_config, field_paths, load_config

pytestmark = pytest.mark.unit


def test_layers_apply_in_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("loss:\n  f_adv: 0.5\ntrain:\n  iterations: 10\n")
    cfg = load_config(path, ["--train.iterations=20", "optim.g_lr=3e-4"])
    assert (cfg.loss.f_adv, cfg.train.iterations, cfg.optim.g_lr) == (0.5, 20, 3e-4)
    assert cfg.loss.g_rec == Config().loss.g_rec


def test_round_trip_through_yaml(tmp_path):
    cfg = load_config(overrides=["--loss.g_rec=0.25", "--data.source.name=gta5", "--data.source.root=/x"])
    dump_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == cfg


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().train.iterations = 5


def test_every_paper_coefficient_is_a_field():
    paths = set(field_paths())
    for name in ("loss.f_adv", "loss.f_aux", "loss.g_adv", "loss.g_aux", "loss.g_rec", "loss.d_aux",
                 "optim.f_lr", "optim.g_lr", "optim.d_lr", "optim.f_beta1", "optim.g_beta1", "optim.d_beta1",
                 "optim.f_bias_lr_mult", "optim.f_lr_decay", "optim.f_lr_decay_every"):
        assert name in paths


@pytest.mark.parametrize("overrides, message", [
    (["--train.iterationz=3"], "unknown config key 'train.iterationz'"),
    (["--nosuch.key=3"], "unknown config key 'nosuch.key'"),
    (["--train.iterationz=3"], "did you mean train.iterations?"),
    (["--train.iterations=abc"], "bad value for train.iterations"),
    (["--optim.f_lr=-1"], "bad value for optim.f_lr"),
    (["--train.mode=adapt"], "bad value for train.mode"),
    (["--data=3"], "'data' is a section"),
    (["--train.iterations"], "has no value"),
    (["--model.pretrained=/w.pth"], "set model.backbone=vgg16"),
    (["--optim.f_lr=inf"], "optim.f_lr"),
    (["--loss.g_rec=nan"], "loss.g_rec"),
])
def test_bad_input_is_one_line(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("train: [1, 2", "not valid YAML at line"),
    ("- 1\n- 2\n", "must hold a mapping"),
    ("train:\n  bogus: 1\n", "unknown config key 'train.bogus'"),
    ("train: 3\n", "is a section"),
])
def test_bad_yaml_files(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/config.yaml")


def test_packaged_configs_layer_in_order():
    cfg = load_config(["vgg16", "gta5"], ["--data.source.root=/gta"])
    assert (cfg.model.backbone, cfg.data.source.name, cfg.data.source.root, cfg.optim.f_lr) == ("vgg16", "gta5", "/gta", 1e-5)
    assert load_config(["vgg16", "synthia"]).data.source.name == "synthia"


def test_the_vgg16_presets_reproduce_the_paper_and_the_public_code():
    """vgg16: the paper's scale (512x1024), public_code: the public code's (320x640); both with the public
    code's loss balance and target crops at the scale F is evaluated at."""
    paper, public = load_config(["vgg16", "gta5"]).data, load_config(["vgg16", "public_code", "gta5"]).data
    assert (paper.crop_height, paper.crop_width, paper.eval_height, paper.eval_width) == (512, 1024, 512, 1024)
    assert (public.crop_height, public.crop_width, public.eval_height, public.eval_width) == (320, 640, 320, 640)
    assert paper.target_scale == public.target_scale == "eval"
    assert load_config(["vgg16", "public_code"]).loss == load_config(["public_code_weights"]).loss


@pytest.mark.parametrize("crop, grid", [((320, 640), (40, 80)), ((512, 1024), (64, 128))])  # D's grid: test_models
def test_public_code_weights_follow_from_the_crop(crop, grid):
    """The public code's balance at any crop: G's L1 over D's location count (1/3,200 at 320x640, 1/8,192 at
    512x1024), F's adversarial and auxiliary weights over the pixels per D location (64)."""
    from lsdseg.losses import in_means

    w = in_means(load_config("public_code_weights").loss, crop[0] * crop[1], grid[0] * grid[1])
    assert w.g_rec == pytest.approx(1 / (grid[0] * grid[1])) and w.g_adv == 0.1 and w.g_aux == 1.0 and w.d_aux == 1.0
    assert w.f_adv == w.f_aux == pytest.approx(0.1 / 64)
    assert in_means(load_config([]).loss, 1, 1) == load_config([]).loss  # the mean convention: as given


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("train:\n  seed: 1  # r\xe9sum\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_config(path)


def test_a_config_file_that_cannot_be_read_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "locked.yaml"
    path.write_text("train: {seed: 1}\n")

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(path), "read_text", refuse)  # root reads any file: refuse as a locked file would
    with pytest.raises(ConfigError, match="cannot be read .Permission denied.: check its permissions"):
        load_config(path)
