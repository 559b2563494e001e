"""``ablate report``: the papers' tables and figures, regenerated from an MLflow store alone
(and the Optuna storage for hyperparameter importances), never from the trainer's internals."""
