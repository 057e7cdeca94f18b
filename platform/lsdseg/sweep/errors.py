"""The sweep's one-line user errors, importable without Ray, Optuna or MLflow (the CLI catches them)."""


class SpaceError(ValueError):
    """A search space that cannot be used; one line naming the problem and the fix."""


class SweepError(ValueError):
    """A sweep that cannot start or resume; one line naming the problem and the fix."""


class SweepInterrupted(Exception):
    """A sweep stopped by Ctrl-C (SIGINT): its state is saved, its runs are marked KILLED; resume it."""

    def __init__(self, folder):
        super().__init__(f"sweep interrupted; continue it with: lsdseg sweep --resume {folder}")
        self.folder = folder
