"""`lsdseg ARGS` in the test's own process, through click's CliRunner: what a user sees (exit status, stdout,
stderr), without the seconds a fresh interpreter and torch's import cost. Tests that need a process of their
own (signals, loader workers, Ray, a real sweep) use tests/sweeps.py's `lsdseg`."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

from click.testing import CliRunner

from lsdseg.cli import main


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def invoke(*args, cwd) -> Ran:
    with contextlib.chdir(cwd):
        result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)
