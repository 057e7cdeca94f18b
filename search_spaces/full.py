"""Loss weights and learning rates together, plus F/C's step decay where it applies."""

from lsdseg.search_spaces import learning_rates, loss_weights


def space(trial) -> None:
    loss_weights.space(trial)
    learning_rates.space(trial)
    # The decay interval only matters when F/C's learning rate decays at all.
    if trial.suggest_categorical("optim.f_lr_decay", [1.0, 0.1]) < 1.0:
        trial.suggest_int("optim.f_lr_decay_every", 200, 1000, step=100)
