"""The terminal belongs to the product: Ray's, MLflow's and Optuna's own output goes to the sweep's log.

Their start-up chatter (database migrations, token warnings, experimental-API warnings, Tune's own hints
and tables) is written by Python loggers, `warnings`, and C++ code straight to file descriptors 1 and 2.
Only moving the descriptors catches all of it; the product's own lines go to a copy of the terminal.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import IO, Iterator, Optional

_terminal: Optional[IO[str]] = None


def terminal() -> IO[str]:
    """Where the product's own lines go: the terminal, also while `quiet` holds fds 1 and 2."""
    return _terminal or sys.stdout


@contextlib.contextmanager
def quiet(log: Path, verbose: bool) -> Iterator[IO[str]]:
    """Within: fds 1 and 2 append to `log` (unless `verbose`); yields a stream that reaches the terminal."""
    global _terminal
    if verbose:
        yield sys.stdout
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    target = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    terminal = os.fdopen(os.dup(saved[0]), "w", buffering=1)
    logging.captureWarnings(True)  # warnings.warn goes through logging, so to the log too
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        _terminal = terminal
        yield terminal
    finally:
        _terminal = None
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, target):
            os.close(fd)
        terminal.close()
        logging.captureWarnings(False)
