"""Sweeps of LSD-seg runs: Ray Tune trials, Optuna's TPE, ASHA early stopping, MLflow tracking.

This is the platform side: it imports Ray, Optuna and MLflow. The method (lsdseg.models, .losses, .step,
.data, .metrics, .train) never does; `trainables/` adapts `run_training` to Ray Tune.
"""
