"""Optuna searches inside Hydra sweeps: spaces, storages, samplers, the sweep loop, trials."""
