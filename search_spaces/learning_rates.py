"""Learning rates of F/C, G and D, and the Adam beta1 of the two adversaries."""


def space(trial) -> None:
    trial.suggest_float("optim.f_lr", 1e-4, 1e-2, log=True)
    trial.suggest_float("optim.g_lr", 1e-5, 1e-3, log=True)
    trial.suggest_float("optim.d_lr", 1e-5, 1e-3, log=True)
    trial.suggest_float("optim.g_beta1", 0.5, 0.9)
    trial.suggest_float("optim.d_beta1", 0.5, 0.9)
