"""`ablate status`: a sweep's progress read from its Optuna storage, as a user runs it."""

from __future__ import annotations

from tests.conftest import run_ablate
from tests.sweeps import sweep, write_conf


def test_status_counts_the_trials_of_each_study(tmp_path):
    sweep(write_conf(tmp_path), tmp_path, "hydra.sweeper.n_trials=2")
    result = run_ablate("status", "experiment=default", cwd=tmp_path)
    header, row, line = result.stdout.strip().splitlines()
    assert header.split() == ["study", "finished", "pruned", "diverged", "failed", "running",
                              "queued", "of", "best"]  # fmt: skip
    assert row.split()[:7] == ["default/nig/digits", "2", "0", "0", "0", "0", "0"]
    assert line == "default: 2 trials, 0 running, 2 in the last hour"


def test_status_of_an_unknown_experiment_is_one_line(tmp_path):
    sweep(write_conf(tmp_path), tmp_path, "hydra.sweeper.n_trials=1")
    result = run_ablate("status", "experiment=greff2017", cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "ablate status: error: no study of experiment 'greff2017' in the Optuna storage "
        "(`optuna.db` in the working folder): check the name, or run its sweep first"
    ]


def test_status_without_a_storage_is_one_line_and_creates_none(tmp_path):
    result = run_ablate("status", "experiment=greff2017", cwd=tmp_path, check=False)
    assert result.returncode == 1 and "no Optuna storage at" in result.stderr
    assert list(tmp_path.iterdir()) == []
