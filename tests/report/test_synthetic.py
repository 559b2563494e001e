"""The synthetic Greff-shaped store: written through MLflow's and Optuna's APIs, and reported."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pandas as pd
import pytest

from ablate.report.cli import main
from ablate.report.verdicts import HOLDS
from ablate.search.trial import MLFLOW_RUN_ATTR
from tests.conftest import mlflow_runs

NAME = "greff2017_synthetic"


def fill(root, runs: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "ablate.report.synthetic", "--root", str(root), "--runs", str(runs)],
        check=True,
        capture_output=True,
        timeout=900,
    )


def test_synthetic_runs_are_shaped_like_the_sweepers(tmp_path):
    fill(tmp_path, 27)  # one trial per (variant, task)
    _, runs = mlflow_runs(tmp_path, NAME)
    jobs = [r for r in runs if r.data.tags["ablate.kind"] == "job"]
    parents = {r.info.run_id: r for r in runs if r.data.tags["ablate.kind"] == "study"}
    assert len(jobs) == len(parents) == 27
    for run in jobs:
        parent = parents[run.data.tags["mlflow.parentRunId"]]
        assert parent.data.tags["optuna.study"] == run.data.tags["optuna.study"]
        assert {"optim.lr", "model.hidden_size", "cell.kind"} <= set(run.data.params)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    studies = optuna.get_all_study_names(storage)
    assert sorted(studies) == sorted(r.data.tags["optuna.study"] for r in jobs)
    by_id = {r.info.run_id: r for r in jobs}
    for name in studies:
        (trial,) = optuna.load_study(study_name=name, storage=storage).trials
        run = by_id[trial.system_attrs[MLFLOW_RUN_ATTR]]
        assert run.data.tags["optuna.study"] == name
        # Optuna holds the sampled u, the job got 1 - u (Greff's momentum)
        assert float(run.data.params["optim.momentum"]) == 1 - trial.params["optim.momentum"]


@pytest.mark.slow
def test_a_synthetic_greff_study_reproduces_its_planted_findings(tmp_path):
    fill(tmp_path, 270)
    out = tmp_path / "report"
    assert main([f"experiment={NAME}", "--root", str(tmp_path), "--out", str(out)]) == 0
    verdicts = pd.read_csv(out / "tables" / "verdicts.csv").set_index("finding")
    assert (
        verdicts.loc["Learning rate is by far the most important hyperparameter", "verdict"]
        == HOLDS
    )
