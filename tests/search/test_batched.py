"""hydra/launcher=batched through the real CLI: the same trials as the joblib launcher, the
same results, each with its own run, trial, folder and checkpoint."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from ablate.stack.launch import group_jobs
from tests.conftest import mlflow_runs, run_ablate

SWEEP = [
    "experiment=greff2017_smoke",
    "hydra.sweeper.n_trials=4",
    "hydra.sweeper.grid.cell=[vanilla,cifg]",
    "hydra.sweeper.grid.task=[digits]",
    "trainer.max_epochs=2",
    "trainer.max_batches=6",
    "tracking.log_artifacts=false",
]


def _results(root):
    _, runs = mlflow_runs(root, "greff2017_smoke")
    jobs = [r for r in runs if r.data.tags.get("ablate.kind") == "job"]
    return {
        (r.data.tags["cell"], r.data.tags["optuna.trial"]): (
            r.info.status,
            r.data.metrics["test_error"],
            r.data.metrics["best_valid_loss"],
            r.data.tags["mlflow.parentRunId"],
            r.data.tags["job_dir"],
        )
        for r in jobs
    }


def test_batched_launcher_matches_joblib(tmp_path):
    roots = {}
    for launcher in ("joblib", "batched"):
        root = tmp_path / launcher
        root.mkdir()
        result = run_ablate(
            "train",
            "-m",
            *SWEEP,
            f"hydra/launcher={launcher}",
            f"tracking.root={root}",
            cwd=root,
            timeout=600,
        )
        roots[launcher] = root
        if launcher == "batched":
            assert "as one stacked model" in result.stderr + result.stdout
    joblib, batched = _results(roots["joblib"]), _results(roots["batched"])
    assert sorted(joblib) == sorted(batched) and len(batched) == 8
    # One parent run per study, parenting its jobs, as under joblib.
    for results in (joblib, batched):
        parents = {cell: {v[3] for k, v in results.items() if k[0] == cell} for cell, _ in results}
        assert all(len(p) == 1 for p in parents.values()) and len(parents) == 2
    for key, (status, test, valid, _, job_dir) in batched.items():
        assert status == "FINISHED"
        assert test == pytest.approx(joblib[key][1], rel=1e-5, abs=1e-9)
        assert valid == pytest.approx(joblib[key][2], rel=1e-5)
        assert (Path(job_dir) / "checkpoint.pt").is_file()
        # Its own log holds its own lines: both epochs and its end, once.
        (log,) = Path(job_dir).glob("*.log")
        text = log.read_text()
        assert text.count("done: best valid") == 1 and text.count("epoch 2:") == 1, text
    storage = f"sqlite:///{roots['batched'] / 'optuna.db'}"
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        states = [t.state for t in study.trials]
        assert states == [optuna.trial.TrialState.COMPLETE] * 4


@pytest.mark.slow  # two more sweeps (~40 s); the default run keeps to its budget
def test_batched_launcher_with_tpe_and_a_rerun(tmp_path):
    """TPE asks a few trials per launch (they still stack where they can); a rerun of a
    finished sweep trains nothing again."""
    tpe = [
        *SWEEP,
        "hydra/launcher=batched",
        "hydra.sweeper.sampler.name=tpe",
        "hydra.sweeper.n_jobs=2",
        f"tracking.root={tmp_path}",
    ]
    run_ablate("train", "-m", *tpe, cwd=tmp_path, timeout=600)
    first = _results(tmp_path)
    again = run_ablate("train", "-m", *tpe, cwd=tmp_path, timeout=600)
    assert "as one stacked model" not in again.stderr + again.stdout
    assert _results(tmp_path) == first and len(first) == 8


def test_groups_are_one_study_and_similar_sizes():
    jobs = [
        ["cell=vanilla", "task=digits", "model.hidden_size=20", "optim.lr=0.1", "seed=0"],
        ["cell=vanilla", "task=digits", "model.hidden_size=24", "optim.lr=0.2", "seed=0"],
        ["cell=vanilla", "task=digits", "model.hidden_size=120", "optim.lr=0.3", "seed=0"],
        ["cell=nfg", "task=digits", "model.hidden_size=21", "optim.lr=0.1", "seed=0"],
        ["cell=vanilla", "task=digits", "model.hidden_size=22", "optim.lr=0.4", "seed=1"],
        ["cell=vanilla", "task=vowels", "model.hidden_size=20", "optim.lr=0.1", "seed=0"],
    ]
    assert group_jobs(jobs, 8, 1.25) == [[0, 4, 1], [2], [3], [5]]
    assert group_jobs(jobs, 2, 1.25) == [[0, 4], [1], [2], [3], [5]]
    assert group_jobs(jobs, 8, 10.0) == [[0, 4, 1, 2], [3], [5]]
