"""Optuna define-by-run search spaces for `lsdseg sweep --space NAME`.

Each module defines `space(trial)`: it only calls `trial.suggest_*` with config field paths as names
(see `lsdseg config`) and may return a dict of constant field values. No computation happens here.
A user's own file with such a `space` function works the same way: `--space path/to/my_space.py`.
"""
