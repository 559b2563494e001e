"""`ablate status`: a sweep's progress read from its Optuna storage (a search) or its MLflow
store (a plain multirun), as a user runs it."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import termios

import pytest

from ablate.paths import experiments_dir
from tests.conftest import run_ablate
from tests.sweeps import sweep, sweep_command, write_conf


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A finished sweep of three trials: its folder and its output."""
    root = tmp_path_factory.mktemp("swept")
    result = sweep(write_conf(root), root, "hydra.sweeper.n_trials=3")
    return root, result.stdout + result.stderr


def test_status_counts_the_trials_of_each_study(swept):
    result = run_ablate("status", "experiment=default", cwd=swept[0])
    header, row, line = result.stdout.strip().splitlines()
    assert header.split() == ["study", "finished", "pruned", "diverged", "failed", "running",
                              "queued", "of", "best"]  # fmt: skip
    assert row.split()[:7] == ["default/nig/digits", "3", "0", "0", "0", "0", "0"]
    assert line == "default: 3 trials, 0 running, 3 in the last hour"


def test_status_of_an_unknown_experiment_is_one_line(swept):
    result = run_ablate("status", "experiment=greff2017", cwd=swept[0], check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "ablate status: error: no study of experiment 'greff2017' in the Optuna storage "
        "(`optuna.db` in the working folder): check the name, or run its sweep first"
    ]


def test_status_without_a_storage_is_one_line_and_creates_none(tmp_path):
    result = run_ablate("status", "experiment=greff2017", cwd=tmp_path, check=False)
    assert result.returncode == 1 and "no Optuna storage at" in result.stderr
    assert list(tmp_path.iterdir()) == []


def _status_lines(output: str) -> list[str]:
    return [line.split("] ")[-1] for line in output.splitlines() if " trials, " in line]


def test_the_sweep_logs_where_it_stands_after_each_launch(swept):
    """One line per launch, as `ablate status` says it; no bar in a log."""
    output = swept[1]
    lines = _status_lines(output)
    assert lines[0] == "default: 0 of 3 trials, 0 running, none finished in the last hour"
    assert [line.split(",")[0] for line in lines[1:]] == [
        "default: 1 of 3 trials", "default: 2 of 3 trials", "default: 3 of 3 trials"
    ]  # fmt: skip
    assert lines[1].endswith("1 in the last hour, ~" + lines[1].rsplit("~", 1)[1])
    assert lines[-1] == "default: 3 of 3 trials, 0 running, complete"
    assert "\r" not in output and "trial/s" not in output


def test_a_sweep_on_a_terminal_draws_its_progress(tmp_path):
    """On a terminal: a bar of trials done of the total, above it the log lines."""
    main, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # rows, cols
    command = sweep_command(write_conf(tmp_path), "hydra.sweeper.n_trials=2")
    proc = subprocess.Popen(command, cwd=tmp_path, stdin=secondary, stdout=secondary,
                            stderr=secondary, close_fds=True)  # fmt: skip
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert proc.wait(timeout=300) == 0
    screen = b"".join(chunks).decode(errors="replace")
    assert "trials: 100%" in screen and "2/2" in screen, screen[-2000:]
    assert "default: 2 of 2 trials, 0 running, complete" in screen


def test_status_of_a_finished_plain_multirun_reads_its_jobs_from_mlflow(tmp_path):
    """weiss2018 is a grid of 100 jobs, no Optuna study: its committed archive, imported."""
    archive = experiments_dir().parent / "reports" / "weiss2018" / "runs.parquet"
    run_ablate("archive", "import", str(archive), cwd=tmp_path)
    lines = run_ablate("status", "experiment=weiss2018", cwd=tmp_path).stdout.splitlines()
    assert lines[0].split() == ["study", "finished", "diverged", "failed", "running",
                                "interrupted", "of", "best"]  # fmt: skip
    rows = [line.split() for line in lines[1:-1]]
    # One row per (cell, task preset) of the grid: anbn and anbncn are both task 'counting'.
    assert [r[0] for r in rows] == [f"weiss2018/{cell}/{task}"
                                    for cell in ("gru", "gru_torch", "lstm", "lstm_b", "tanh")
                                    for task in ("anbn", "anbncn")]  # fmt: skip
    assert all(r[1:7] == ["10", "0", "0", "0", "0", "10"] for r in rows)
    assert lines[-1] == "weiss2018: 100 of 100 runs, 0 running, complete"


def test_status_of_a_plain_multirun_under_way_counts_what_ran(tmp_path):
    run_ablate(
        "train", "-m", "experiment=weiss2018", "task=anbn", "cell=gru", "seed=0,1",
        "task.n_train=4", "task.n_max=8", "trainer.max_epochs=1", "tracking.log_artifacts=false",
        cwd=tmp_path,
    )  # fmt: skip
    lines = run_ablate("status", "experiment=weiss2018", cwd=tmp_path).stdout.splitlines()
    assert lines[1].split()[:7] == ["weiss2018/gru/anbn", "2", "0", "0", "0", "0", "10"]
    assert lines[-1].startswith("weiss2018: 2 of 100 runs, 0 running, 2 in the last hour, ~")
