"""Study archives: an experiment's MLflow runs and Optuna studies as one parquet file, to
commit beside its report and to import into fresh stores (``ablate archive``)."""
