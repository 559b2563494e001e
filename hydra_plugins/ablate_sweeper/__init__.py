"""ablate's Optuna sweeper for Hydra (``hydra/sweeper=ablate``); Hydra finds sweepers in the
top-level ``hydra_plugins`` namespace package."""
