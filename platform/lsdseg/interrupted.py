"""Ctrl-C, with what it left behind."""
from __future__ import annotations


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C caught where the code knows what was kept: its message is the one line the command prints
    (what is kept, and the command that goes on). Still a KeyboardInterrupt, so every handler of one sees it."""
