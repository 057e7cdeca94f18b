"""Checkpoints: all four networks, the three optimizers, the step and the RNG states, written atomically.

Files hold only tensors and plain Python values, so they load with `torch.load(weights_only=True)`:
a checkpoint can never run code. The data streams need no state: a batch is a function of (seed, step).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterable, Optional

import torch

from lsdseg.config import Config
from lsdseg.config_io import to_dict, with_overrides, with_values
from lsdseg.models import Nets, build_nets
from lsdseg.optim import Optimizers
from lsdseg.runlayout import RunLayout

FORMAT = "lsdseg-checkpoint-v1"
DIGEST = "sha256"  # of every tensor's bytes, in key order: flipped bits on a disk or in a copy are caught on load


def _digest(value: Any, h=None, key: str = "") -> str:
    """SHA-256 over the key paths and the raw bytes of every tensor in `value` (the bulk of a checkpoint;
    a damaged non-tensor part fails to unpickle on its own)."""
    h = h if h is not None else hashlib.sha256()
    if isinstance(value, torch.Tensor):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        for k in sorted(value, key=str):
            if k != DIGEST:
                _digest(value[k], h, f"{key}/{k}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _digest(item, h, f"{key}/{i}")
    return h.hexdigest()


class CheckpointError(ValueError):
    """A checkpoint that is missing or of the wrong kind; the message is one line with the fix."""


def save(path: Path, nets: Nets, opts: Optimizers, step: int, config: dict, extra: dict[str, Any]) -> Path:
    state = {
        "format": FORMAT,
        "step": step,
        "config": config,
        "nets": {name: net.state_dict() for name, net in nets.named().items()},
        "optims": {name: opt.state_dict() for name, opt in vars(opts).items() if opt is not None},
        "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        **extra,
    }
    state[DIGEST] = _digest(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a torn checkpoint under the real name
    return path


def load(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found: pass a .pt file written by `lsdseg train`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable or unsafe pickle: one line, not a traceback
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(err).__name__}): "
                              "pass a .pt file written by `lsdseg train`") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an lsdseg checkpoint: pass a .pt file written by `lsdseg train`")
    if DIGEST in state and state[DIGEST] != _digest(state):  # checkpoints written before digests load unchecked
        raise CheckpointError(f"checkpoint {path} is damaged (its weights do not match the digest written with them): "
                              "use another checkpoint of the run, or copy this one again")
    return state


def latest_checkpoint(out_dir: Path | str) -> Optional[Path]:
    """The newest evaluation checkpoint of a run folder, or None."""
    return RunLayout(Path(out_dir)).latest()


def rebuild(state: dict[str, Any], overrides: Iterable[str] = ()) -> tuple[Config, Nets]:
    """The networks of a checkpoint, on the CPU in eval mode, with its config (plus `overrides`, e.g. another
    validation folder): the one way eval, predict, the report and export turn a checkpoint back into a model.
    Every weight comes from the checkpoint, so `model.pretrained` is dropped (that file need not be here);
    D is rebuilt only to keep the set complete (inference does not use it)."""
    cfg = with_overrides(to_dict(with_values(state["config"], {"model.pretrained": None})), overrides)
    nets = build_nets(cfg.model, adapt="g" in state["nets"])
    for name, net in nets.named().items():
        try:
            net.load_state_dict(state["nets"][name])
        except (RuntimeError, KeyError) as err:  # e.g. a --model.* override that changes a layer's shape
            first = str(err).strip().splitlines()[-1].strip()[:160]
            raise CheckpointError(f"the checkpoint's {name.upper()} does not fit the model config ({first}): "
                                  "drop the --model.* overrides; the checkpoint's own model config is used otherwise") from None
        net.eval()
    return cfg, nets


def restore(state: dict[str, Any], nets: Nets, opts: Optimizers | None) -> None:
    for name, net in nets.named().items():
        net.load_state_dict(state["nets"][name])
    if opts is not None:
        for name, opt in vars(opts).items():
            if opt is not None:
                opt.load_state_dict(state["optims"][name])
    torch.set_rng_state(state["rng"]["torch"])
    if torch.cuda.is_available() and state["rng"]["cuda"]:
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
