"""Faults: killed and interrupted sweeps, parallel workers on one sqlite store, failing trials,
and processes left behind (by a killed sweep, by `ablate ui`)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests.conftest import ctrl_c_reaches_child, mlflow_runs, run_ablate
from tests.sweeps import (
    Spawned,
    free_port,
    left_behind,
    ps_lines,
    sweep,
    sweep_command,
    trials,
    write_conf,
)
from tests.tasks.helpers import write_framewise


@pytest.mark.parametrize("workers", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_workers_share_one_study_and_one_sqlite_store(tmp_path, workers):
    """Identical sweeps started together: one MLflow parent run for the study, parenting
    every job, and no trial but the n_trials that ran (none asked of the full study)."""
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
    assert [t.state for t in done] == [TrialState.COMPLETE] * 8
    _, runs = mlflow_runs(tmp_path)
    parents = [r for r in runs if r.data.tags.get("ablate.kind") == "study"]
    assert len(parents) == 1, [r.info.run_id for r in parents]
    jobs = [r for r in runs if r.data.tags.get("ablate.kind") == "job"]
    assert len(jobs) == 8 and all(r.info.status == "FINISHED" for r in jobs)
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parents[0].info.run_id}
    assert sorted(int(r.data.tags["optuna.trial"]) for r in jobs) == list(range(8))


@contextlib.contextmanager
def writes_held(db: Path) -> Iterator[None]:
    """No process writes to the sqlite file ``db`` meanwhile (they wait; reads go on)."""
    holder = sqlite3.connect(db, isolation_level=None, timeout=60)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _wait_for(condition, what: str, procs, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        assert all(p.poll() is None for p in procs), f"a sweep ended waiting for {what}"
        time.sleep(0.1)


def test_sweeps_racing_for_a_study_make_one_parent_run_and_no_surplus_trial(tmp_path):
    """Three sweeps of one study of two trials, forced into the worst interleaving: each
    looks for the study's parent run before any has made it, and each asks for a trial
    while the study still has room. One parent run; two trials, both run; nothing else."""
    conf = write_conf(tmp_path)
    _store(tmp_path)
    mlflow_db, optuna_db = tmp_path / "mlflow.db", tmp_path / "optuna.db"
    marks = [tmp_path / "multirun" / f"w{i}" / "multirun.yaml" for i in range(3)]

    def n_runs() -> int:
        with contextlib.closing(sqlite3.connect(mlflow_db, timeout=60)) as db:
            return int(db.execute("SELECT count(*) FROM runs").fetchone()[0])

    procs: list[subprocess.Popen] = []
    mlflow_held = contextlib.ExitStack()
    mlflow_held.enter_context(writes_held(mlflow_db))  # each sweep looks for the parent run
    try:
        with contextlib.ExitStack() as optuna_held:
            try:
                procs = [
                    subprocess.Popen(
                        sweep_command(
                            conf,
                            "hydra.sweeper.n_trials=2",
                            "trainer.max_epochs=1",
                            f"hydra.sweep.dir={mark.parent}",
                        ),
                        cwd=tmp_path,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        text=True,
                    )
                    for mark in marks
                ]
                # multirun.yaml: a sweep has its study, and is about to look for the parent.
                _wait_for(lambda: all(m.exists() for m in marks), "the sweeps to start", procs)
                time.sleep(3)
                # Then each asks for a trial while the study has room.
                optuna_held.enter_context(writes_held(optuna_db))
            finally:
                mlflow_held.close()
            _wait_for(lambda: n_runs() >= 1, "a parent run", procs)
            time.sleep(5)
        outputs = [p.communicate(timeout=600)[0] for p in procs]
    finally:
        mlflow_held.close()
        for p in procs:
            p.kill()
            p.wait()
    assert all(p.returncode == 0 for p in procs), outputs
    _, runs = mlflow_runs(tmp_path)
    parents = [r for r in runs if r.data.tags.get("ablate.kind") == "study"]
    states = [t.state.name for t in trials(tmp_path)]
    assert (len(parents), states) == (1, ["COMPLETE", "COMPLETE"])
    jobs = [r for r in runs if r.data.tags.get("ablate.kind") == "job"]
    assert len(jobs) == 2 and all(r.info.status == "FINISHED" for r in jobs)
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parents[0].info.run_id}


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


@pytest.mark.parametrize(
    ("launcher", "running"),
    [
        (["hydra/launcher=joblib", "hydra.sweeper.n_jobs=2"], 2),
        (["hydra/launcher=batched", "hydra.launcher.group_size=3"], 6),
    ],
    ids=["joblib", "batched"],
)
def test_a_killed_sweep_leaves_no_worker_behind(tmp_path, launcher, running):
    """SIGKILL of a sweep on two loky workers (each training one trial, or a group of three
    as one stacked model): the workers (and their resource trackers) end with it, closing
    every run they hold (KILLED), and record nothing more in Optuna (the trials left RUNNING
    for the next sweep)."""
    conf = write_conf(tmp_path)
    command = sweep_command(
        conf,
        *launcher,
        "hydra.launcher.n_jobs=2",
        "threads=1",
        "trainer.max_epochs=200",
        "trainer.patience=200",
    )
    with Spawned(command, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as run:
        # Every trial training: each has checkpointed an epoch.
        deadline = time.monotonic() + 300
        while (
            run.proc.poll() is None
            and time.monotonic() < deadline
            and len(list((tmp_path / "multirun").rglob("checkpoint.pt"))) < running
        ):
            time.sleep(0.1)
        busy = [t for t in trials(tmp_path) if "ablate:mlflow_run_id" in t.system_attrs]
        assert len(busy) == running, "the two workers did not start their trials"
        below = run.below()
        assert len([p for p in below if "LokyProcess" in " ".join(p.cmdline())]) == 2, ps_lines(
            below
        )
        run.proc.kill()
        run.proc.wait()
        assert left_behind(below, timeout=60) == []  # a job has 30 s to close its run

    done = {t.number: t for t in trials(tmp_path)}
    assert all(done[t.number].state is TrialState.RUNNING for t in busy)
    _, runs = mlflow_runs(tmp_path)
    jobs = [r for r in runs if r.data.tags.get("ablate.kind") == "job"]
    assert len(jobs) == running and all(r.info.status == "KILLED" for r in jobs), [
        (r.info.status, r.data.tags.get("failure_reason")) for r in jobs
    ]


def test_a_job_whose_sweep_is_gone_does_not_end_its_trial(tmp_path):
    """The next sweep gives such a trial back and runs its parameters again: recorded by the
    orphan too, it would count twice. Nor does a job end a trial given back meanwhile."""
    import optuna

    from ablate.search.trial import HOST_ATTR, PID_ATTR, JobOutcome, TrialReporter

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that was the sweep's and is no more
    for pid in (gone.pid, os.getpid()):
        trial = study.ask()
        study._storage.set_trial_system_attr(trial._trial_id, HOST_ATTR, socket.gethostname())
        study._storage.set_trial_system_attr(trial._trial_id, PID_ATTR, pid)
    orphan, given_back = study.get_trials()
    study._storage.set_trial_state_values(given_back._trial_id, TrialState.FAIL)

    outcome = JobOutcome(0.5, "complete", "minimize")
    TrialReporter(storage, "s", orphan.number, None).finish(outcome)
    assert study.get_trials()[0].state is TrialState.RUNNING  # left for the next sweep
    assert TrialReporter(storage, "s", given_back.number, None).finish(outcome) is False
    assert study.get_trials()[1].state is TrialState.FAIL


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


# -- ablate ui -------------------------------------------------------------------------------


def _store(root) -> None:
    from ablate.tracking import ensure_experiment

    ensure_experiment(f"sqlite:///{root / 'mlflow.db'}", "default", root)


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def _as_a_background_job() -> None:
    """Popen(preexec_fn=...): as a shell starts `ablate ui &` in a script, SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)]
)
def test_a_signal_to_ablate_ui_stops_every_process_it_started(tmp_path, signum):
    _store(tmp_path)
    port = free_port()
    command = [sys.executable, "-m", "ablate", "ui", "--root", str(tmp_path), "--port", str(port)]
    with Spawned(
        command,
        tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_as_a_background_job,
    ) as ui:
        # The whole tree up: uvicorn and its workers, the job runner and its huey consumers.
        deadline = time.monotonic() + 240
        while ui.proc.poll() is None and time.monotonic() < deadline:
            below = ui.below()
            if _answers(port) and any("huey_consumer" in " ".join(p.cmdline()) for p in below):
                break
            time.sleep(0.5)
        assert ui.proc.poll() is None, ui.proc.stdout.read()
        below = ui.below()
        assert len(below) >= 5, ps_lines(below)

        ui.proc.send_signal(signum)  # to ablate ui alone, as `kill PID` does
        assert ui.proc.wait(timeout=60) == 0
        assert left_behind(below, timeout=5) == []
        assert not _answers(port)
        with socket.socket() as again:  # nothing listens on the port any more
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            again.bind(("127.0.0.1", port))


def test_ablate_ui_refuses_a_busy_port_in_one_line(tmp_path):
    _store(tmp_path)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        result = run_ablate(
            "ui",
            "--root",
            str(tmp_path),
            "--port",
            str(port),
            cwd=tmp_path,
            check=False,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"ablate ui: error: port {port} on 127.0.0.1 is in use (another `ablate ui`, or another "
        "server): stop it, or choose another port with --port"
    ]
    assert "MLflow UI for" not in result.stdout


def test_a_build_baton_left_by_a_killed_process_does_not_hang_the_next():
    """torch waits forever on its build baton (a file named `lock`) while it exists; a worker
    SIGKILLed while building or loading the kernels leaves one behind."""
    from ablate.cells.compiled import build_name, build_root

    load = [sys.executable, "-c", "from ablate.cells.compiled import kernels; assert kernels()"]
    subprocess.run(load, check=True, timeout=600, capture_output=True)  # built (or cached)
    baton = build_root() / build_name() / "lock"
    baton.touch()  # what the killed process left
    subprocess.run(load, check=True, timeout=120, capture_output=True)
    assert not baton.exists()
