"""LSD-seg's loss weights (mean-loss convention, lsdseg/losses.py): F's alpha and beta, G's three terms."""


def space(trial) -> None:
    trial.suggest_float("loss.f_adv", 1e-3, 1.0, log=True)  # beta
    trial.suggest_float("loss.f_aux", 1e-3, 1.0, log=True)  # alpha
    trial.suggest_float("loss.g_adv", 1e-2, 1.0, log=True)
    trial.suggest_float("loss.g_aux", 0.1, 3.0, log=True)
    trial.suggest_float("loss.g_rec", 0.1, 10.0, log=True)
