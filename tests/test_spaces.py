"""Search spaces: pure declarations over config field paths, checked before any trial runs."""
from __future__ import annotations

import optuna
import pytest

from lsdseg.config import Config
from lsdseg.config_io import field_paths, to_dict
from lsdseg.sweep.spaces import SpaceError, check_space, load_space

pytestmark = pytest.mark.unit

BASE = to_dict(Config())


@pytest.mark.parametrize("name", ["loss_weights", "learning_rates", "full"])
def test_builtin_spaces_name_only_config_fields(name):
    distributions = check_space(load_space(name), name, BASE)
    assert distributions and set(distributions) <= set(field_paths())


def test_full_space_is_both_plus_a_conditional():
    full = set(check_space(load_space("full"), "full", BASE))
    both = set(check_space(load_space("loss_weights"), "", BASE)) | set(check_space(load_space("learning_rates"), "", BASE))
    assert both < full and "optim.f_lr_decay_every" in full
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(30):  # the decay interval is only drawn when the learning rate decays at all
        trial = study.ask()
        load_space("full")(trial)
        assert ("optim.f_lr_decay_every" in trial.params) == (trial.params["optim.f_lr_decay"] < 1.0)
        study.tell(trial, 0.0)


def _user_space(tmp_path, body):
    path = tmp_path / "my_space.py"
    path.write_text("def space(trial):\n" + "".join(f"    {line}\n" for line in body))
    return str(path)


def test_a_users_file_works(tmp_path):
    path = _user_space(tmp_path, ['trial.suggest_float("loss.f_adv", 0.01, 0.5, log=True)', 'return {"loss.g_rec": 2.0}'])
    assert set(check_space(load_space(path), path, BASE)) == {"loss.f_adv"}


@pytest.mark.parametrize("body, message", [
    (['trial.suggest_float("loss.f_adx", 0.01, 0.5)'], "unknown config field 'loss.f_adx'"),
    (['trial.suggest_float("optim.f_lr", -1.0, 0.1)'], "optim.f_lr range [-1.0, 0.1]"),
    (['trial.suggest_float("optim.g_beta1", 0.5, 1.5)'], "optim.g_beta1 range [0.5, 1.5]"),
    (['trial.suggest_float("loss.f_adv", 0.0, 0.5, log=True)'], "is invalid"),
    (['return {"train.mode": "adapt"}'], "which the config rejects"),
    (['return 3'], "return None or a dict"),
])
def test_bad_spaces_fail_in_one_line(tmp_path, body, message):
    path = _user_space(tmp_path, body)
    with pytest.raises(SpaceError) as err:
        check_space(load_space(path), path, BASE)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name, message", [("nosuch", "unknown search space 'nosuch'"), ("/nope/x.py", "not found")])
def test_unknown_spaces(name, message):
    with pytest.raises(SpaceError, match=message):
        load_space(name)
