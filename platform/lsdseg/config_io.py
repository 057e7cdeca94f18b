"""Config layering: dataclass defaults, then an optional YAML file, then `section.key=value` overrides.

Unknown keys and bad values raise `ConfigError` with one line that names the key and the fix.
"""
from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import TypeAdapter, ValidationError

from lsdseg.config import Config

_ADAPTER = TypeAdapter(Config)
PACKAGED = Path(__file__).parent / "configs"  # `--config NAME` finds configs/NAME.yaml


class ConfigError(ValueError):
    """A config that cannot be built; the message is one line that says what to change."""


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def field_paths(cfg: Config | None = None) -> dict[str, Any]:
    """Every leaf field as 'section.key' -> current value."""
    out: dict[str, Any] = {}

    def walk(prefix: str, node: dict[str, Any]) -> None:
        for key, value in node.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(path + ".", value)
            else:
                out[path] = value

    walk("", to_dict(cfg or Config()))
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """'--train.iterations=50' or 'train.iterations=50' -> ('train.iterations', 50); values are YAML."""
    body = text[2:] if text.startswith("--") else text
    if "=" not in body:
        raise ConfigError(f"override {text!r} has no value: write it as --section.key=value")
    key, raw = body.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _leaves(tree: dict[str, Any], prefix: str = "") -> list[str]:
    return [p for k, v in tree.items() for p in (_leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"])]


def _unknown(path: str, known: list[str]) -> ConfigError:
    """An unknown key, with the closest known ones (a typo's most likely meaning)."""
    close = difflib.get_close_matches(path, known, n=2, cutoff=0.8)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return ConfigError(f"unknown config key {path!r}: {hint}`lsdseg config` lists every key")


def _set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            raise _unknown(path, _leaves(tree))
        node = child
    if parts[-1] not in node:
        raise _unknown(path, _leaves(tree))
    if isinstance(node[parts[-1]], dict):
        raise ConfigError(f"{path!r} is a section: set one of its keys, e.g. --{path}.<key>=value")
    node[parts[-1]] = value


def _merge(tree: dict[str, Any], update: dict[str, Any], prefix: str = "") -> None:
    for key, value in update.items():
        path = f"{prefix}{key}"
        if key not in tree:
            raise _unknown(path, _leaves(tree, prefix))
        if isinstance(tree[key], dict) != isinstance(value, dict):
            kind = "a section: set its keys" if isinstance(tree[key], dict) else "a value, not a section"
            raise ConfigError(f"{path!r} is {kind}; fix the YAML file or the override")
        if isinstance(value, dict):
            _merge(tree[key], value, path + ".")
        else:
            tree[key] = value


def from_dict(tree: dict[str, Any]) -> Config:
    """Validate a full or partial nested dict (missing keys take defaults)."""
    base = to_dict(Config())
    _merge(base, tree)
    try:
        return _ADAPTER.validate_python(base)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        got = f" (got {first['input']!r})" if "input" in first and not isinstance(first["input"], dict) else ""
        msg = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"bad value for {where}: {msg}{got}; fix it in the YAML file or the override") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file() and (PACKAGED / f"{path}.yaml").is_file():
        path = PACKAGED / f"{path}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in PACKAGED.glob("*.yaml")))
        raise ConfigError(f"config file {str(path)!r} not found: pass a YAML file or a packaged config ({names})")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text: save it as UTF-8 YAML") from None
    except OSError as err:
        raise ConfigError(f"config file {str(path)!r} cannot be read ({err.strerror}): check its permissions") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {str(path)!r} is not valid YAML{line}: fix its syntax") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections (data:, model:, ...)")
    return loaded or {}


def load_config(paths: str | Path | Iterable[str | Path] | None = None, overrides: Iterable[str] = ()) -> Config:
    """Defaults, then each YAML file in order (a later file wins), then the overrides."""
    if paths is None:
        paths = []
    elif isinstance(paths, (str, Path)):
        paths = [paths]
    tree = to_dict(Config())
    for path in paths:
        _merge(tree, _read_yaml(Path(path)))
    return with_overrides(tree, overrides)


def with_overrides(tree: dict[str, Any], overrides: Iterable[str] = ()) -> Config:
    """A (partial) config tree, e.g. one stored in a checkpoint, plus `section.key=value` overrides."""
    return with_values(tree, dict(parse_override(text) for text in overrides))


def with_values(tree: dict[str, Any], values: dict[str, Any]) -> Config:
    """A (partial) config tree plus typed values by field path, e.g. a sweep trial's sampled values."""
    base = to_dict(Config())
    _merge(base, tree)
    for path, value in values.items():
        _set_path(base, path, value)
    return from_dict(base)


def dump_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
