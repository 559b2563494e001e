"""Faults: killed and interrupted sweeps, parallel workers on one sqlite store, failing trials."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from optuna.trial import TrialState

from tests.conftest import ctrl_c_reaches_child, mlflow_runs
from tests.sweeps import sweep, sweep_command, trials, write_conf
from tests.tasks.helpers import write_framewise


@pytest.mark.parametrize("workers", [2, 4])
def test_workers_share_one_study_and_one_sqlite_store(tmp_path, workers):
    conf = write_conf(tmp_path)
    command = sweep_command(conf, "hydra.sweeper.n_trials=8", "trainer.max_epochs=1")
    procs = [
        subprocess.Popen(
            command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(workers)
    ]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert not any("database is locked" in out for out in outputs)
    done = trials(tmp_path)
    complete = [t for t in done if t.state is TrialState.COMPLETE]
    assert len(complete) == 8
    assert all(t.state is TrialState.COMPLETE or "ablate:surplus" in t.system_attrs for t in done)
    _, runs = mlflow_runs(tmp_path)
    jobs = [r for r in runs if r.data.tags.get("ablate.kind") == "job"]
    assert len(jobs) == 8 and all(r.info.status == "FINISHED" for r in jobs)
    assert sorted(int(r.data.tags["optuna.trial"]) for r in jobs) == sorted(
        t.number for t in complete
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_closes_the_running_trial_in_both_stores(tmp_path, signum):
    conf = write_conf(tmp_path)
    proc = subprocess.Popen(
        sweep_command(conf, "trainer.max_epochs=200", "trainer.patience=200"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=ctrl_c_reaches_child,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "multirun").rglob("checkpoint.pt")):
        time.sleep(0.05)
    proc.send_signal(signum)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    trial, retry = trials(tmp_path)
    assert trial.state is TrialState.FAIL
    assert "interrupted" in trial.system_attrs["ablate:given_back"]
    assert retry.state is TrialState.WAITING  # queued with the same parameters, to run next time
    assert retry.system_attrs["fixed_params"] == trial.params
    _, runs = mlflow_runs(tmp_path)
    assert {r.data.tags["ablate.kind"]: r.info.status for r in runs} == {
        "job": "KILLED",
        "study": "KILLED",
    }


def test_a_trial_that_raises_is_recorded_and_the_sweep_goes_on(tmp_path):
    conf = write_conf(tmp_path)
    good, bad = write_framewise(tmp_path / "good"), write_framewise(tmp_path / "bad")
    (bad / "train.npz").write_bytes(b"not an npz")
    (conf / "search" / "data.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n  - override /hydra/sweeper: ablate\n"
        "hydra:\n  sweeper:\n    n_trials: 6\n    max_failure_rate: 1.0\n"
        f"    params:\n      task:\n        data_dir: {{choices: ['{good}', '{bad}']}}\n"
        "      model:\n        input_noise: {type: float, low: 0.0, high: 0.5}\n"
    )
    sweep(conf, tmp_path, "task=framewise", "trainer.eval_batch_size=8", search="data")
    done = trials(tmp_path, "default/nig/framewise")
    failed = [t for t in done if t.state is TrialState.FAIL]
    complete = [t for t in done if t.state is TrialState.COMPLETE]
    assert failed and complete and len(failed) + len(complete) == 6  # failures are not retried
    assert all(
        "train.npz: not a readable .npz file" in t.system_attrs["ablate:error"] for t in failed
    )
    assert all(t.params["task.data_dir"] == str(bad) for t in failed)
    _, runs = mlflow_runs(tmp_path)
    jobs = [r for r in runs if r.data.tags.get("ablate.kind") == "job"]
    assert len(jobs) == len(complete)  # a refused job leaves no run behind


def test_telemetry_is_off_in_what_ablate_runs(tmp_path):
    code = (
        "import os, ablate.tracking; "
        "print(os.environ['MLFLOW_DISABLE_TELEMETRY'], os.environ['DO_NOT_TRACK'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout.split()
    assert out == ["true", "true"]
