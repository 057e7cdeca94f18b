"""Loading and checking search spaces before any trial runs.

A space is a define-by-run function `space(trial)` that calls `trial.suggest_*` with config field paths
and may return constants by field path. `check_space` runs it against a throwaway in-memory study many
times (to see every conditional branch) and validates every name and both ends of every range against
the typed config, so a bad space fails at sweep start with one line.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any, Callable

import optuna

from lsdseg.config_io import ConfigError, field_paths, with_values
from lsdseg.sweep.errors import SpaceError

Space = Callable[[optuna.Trial], "dict[str, Any] | None"]


def load_space(name: str) -> Space:
    """`full`, `loss_weights`, `learning_rates` (search_spaces/), or a path to a .py file with space(trial)."""
    if name.endswith(".py"):
        path = Path(name).expanduser().resolve()
        if not path.is_file():
            raise SpaceError(f"search space file {path} not found: pass an existing .py file or a built-in space name")
        spec = importlib.util.spec_from_file_location(f"lsdseg_user_space_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        # registered by name: Tune pickles the searcher, and with it `space`, by reference to this module
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as err:  # the user's file: show what broke, in one line
            raise SpaceError(f"search space file {path} fails to import ({type(err).__name__}: {err}): fix the file") from None
    else:
        try:
            module = importlib.import_module(f"lsdseg.search_spaces.{name}")
        except ModuleNotFoundError:
            raise SpaceError(f"unknown search space {name!r}: use full, loss_weights, learning_rates or a path to a .py file") from None
    space = getattr(module, "space", None)
    if not callable(space):
        raise SpaceError(f"search space {name!r} defines no space(trial) function: add one")
    return space


def sample(space: Space, trial: optuna.Trial, name: str) -> dict[str, Any]:
    try:
        constants = space(trial) or {}
    except (ValueError, TypeError) as err:  # e.g. Optuna rejecting low > high, or log=True with low <= 0
        raise SpaceError(f"search space {name!r} is invalid: {err}") from None
    except (Exception, SystemExit) as err:  # the user's code: a typo (AttributeError), even a sys.exit()
        raise SpaceError(f"search space {name!r} fails when it runs ({type(err).__name__}: {err}): fix its space(trial)") from None
    if not isinstance(constants, dict):
        raise SpaceError(f"search space {name!r} returns {type(constants).__name__}: return None or a dict of field values")
    return {**trial.params, **constants}


def check_space(space: Space, name: str, base: dict[str, Any], draws: int = 64) -> dict[str, optuna.distributions.BaseDistribution]:
    """Validate a space against the base config tree; returns every parameter's distribution."""
    known = field_paths()
    logging.getLogger("optuna").setLevel(logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    distributions: dict[str, optuna.distributions.BaseDistribution] = {}
    for _ in range(draws):
        trial = study.ask()
        values = sample(space, trial, name)
        for key in values:
            if key not in known:
                raise SpaceError(f"search space {name!r} names unknown config field {key!r}: use a field path from `lsdseg config`")
        for key, dist in trial.distributions.items():
            if key not in distributions:  # each range's ends first: the clearest message for a bad range
                distributions[key] = dist
                ends = dist.choices if isinstance(dist, optuna.distributions.CategoricalDistribution) else (dist.low, dist.high)
                for value in ends:
                    _validate(base, {key: value}, f"search space {name!r}: {key} range {list(ends)} reaches {value}")
        _validate(base, values, f"search space {name!r} draws {values}")
        study.tell(trial, 0.0)
    return distributions


def continuous(space: Space, name: str, draws: int = 64) -> dict[str, optuna.distributions.FloatDistribution]:
    """The float parameters that every draw samples: what PBT may perturb (a conditional one is missing
    from some trials' configs, and a categorical or integer one has no x0.8 / x1.2)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    common: dict[str, optuna.distributions.FloatDistribution] | None = None
    for _ in range(draws):
        trial = study.ask()
        sample(space, trial, name)
        floats = {k: d for k, d in trial.distributions.items() if isinstance(d, optuna.distributions.FloatDistribution) and d.step is None}
        common = floats if common is None else {k: d for k, d in common.items() if k in floats}
        study.tell(trial, 0.0)
    return common or {}


def _validate(base: dict[str, Any], values: dict[str, Any], where: str) -> None:
    try:
        with_values(base, values)
    except ConfigError as err:
        reason = str(err).split("; fix it")[0]
        raise SpaceError(f"{where}, which the config rejects ({reason}); narrow the range") from None
