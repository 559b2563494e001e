"""ablate's batched launcher for Hydra (``hydra/launcher=batched``): a launch's compatible
trials trained as stacked models; the work is in :mod:`ablate.stack.launch`."""
