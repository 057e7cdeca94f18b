"""Ray Tune adapters: thin wrappers that turn sampled values into a typed config and call run_training."""
