"""ablate's Optuna sweeper, end to end: real subprocesses, real Optuna and MLflow sqlite stores."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import mlflow_runs
from tests.sweeps import sweep, sweep_command, trials, write_conf


@pytest.fixture
def conf(tmp_path) -> Path:
    return write_conf(tmp_path)


def test_random_search_finishes_n_trials_and_a_rerun_adds_nothing(conf, tmp_path):
    sweep(conf, tmp_path, "hydra.sweeper.n_jobs=2")
    done = trials(tmp_path)
    assert [t.state for t in done] == [TrialState.COMPLETE] * 6
    assert len({(t.params["optim.lr"], t.params["model.input_noise"]) for t in done}) == 6
    _, runs = mlflow_runs(tmp_path)
    parents = [r for r in runs if r.data.tags.get("ablate.kind") == "study"]
    children = [r for r in runs if r.data.tags.get("ablate.kind") == "job"]
    assert len(parents) == 1 and len(children) == 6
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(int(r.data.tags["optuna.trial"]) for r in children) == list(range(6))
    assert {r.data.tags["optuna.study"] for r in children} == {"default/nig/digits"}
    best = min(done, key=lambda t: t.value)
    assert parents[0].data.metrics["best_value"] == pytest.approx(best.value)
    assert parents[0].data.tags["best_trial"] == str(best.number)
    assert (
        "best_value"
        in (
            tmp_path / "multirun" / "default" / "studies" / "default_nig_digits" / "best.yaml"
        ).read_text()
    )

    sweep(conf, tmp_path, "hydra.sweeper.n_jobs=2")
    assert len(trials(tmp_path)) == 6
    _, again = mlflow_runs(tmp_path)
    assert len(again) == 7


def test_same_seed_same_search(conf, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    sweep(conf, tmp_path / "a", "hydra.sweeper.n_trials=2")
    sweep(conf, tmp_path / "b", "hydra.sweeper.n_trials=2")
    a, b = trials(tmp_path / "a"), trials(tmp_path / "b")
    assert [t.params for t in a] == [t.params for t in b]
    assert [t.value for t in a] == [t.value for t in b]


def test_killed_sweep_resumes_to_exactly_n_trials(conf, tmp_path):
    proc = subprocess.Popen(
        sweep_command(conf, "trainer.max_epochs=4"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        try:
            seen = trials(tmp_path)
        except Exception:  # noqa: BLE001 - the study does not exist yet
            seen = []
        complete = [t for t in seen if t.state is TrialState.COMPLETE]
        # A trial in its job: running, with its MLflow run open.
        busy = [t for t in seen if t.state is TrialState.RUNNING
                and "ablate:mlflow_run_id" in t.system_attrs]
        if len(complete) >= 3 and busy:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # One trial in its job; the rest of the batch asked, waiting for the launcher.
    killed = [t for t in trials(tmp_path) if t.state is TrialState.RUNNING]
    in_job = [t for t in killed if "ablate:mlflow_run_id" in t.system_attrs]
    assert len(in_job) == 1, "the sweep was not killed in the middle of a trial"

    sweep(conf, tmp_path, "trainer.max_epochs=4")
    done = trials(tmp_path)
    complete = [t for t in done if t.state is TrialState.COMPLETE]
    assert len(complete) == 6
    assert len({(t.params["optim.lr"], t.params["model.input_noise"]) for t in complete}) == 6
    failed = [t for t in done if t.state is TrialState.FAIL]
    assert sorted(t.number for t in failed) == sorted(t.number for t in killed)
    for lost in failed:
        retry = [t for t in complete if t.user_attrs.get("ablate:retry_of") == lost.number]
        assert retry and retry[0].params == lost.params
    # Same parameters, same job folder: the retry continued the killed job's MLflow run.
    (retry,) = [t for t in complete if t.user_attrs.get("ablate:retry_of") == in_job[0].number]
    assert retry.system_attrs["ablate:mlflow_run_id"] == in_job[0].system_attrs[
        "ablate:mlflow_run_id"
    ]
    _, runs = mlflow_runs(tmp_path)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    jobs = [r for r in runs if r.data.tags.get("ablate.kind") == "job"]
    assert len([r for r in jobs if r.info.status == "FINISHED"]) == 6


def test_pruner_stops_a_bad_configuration(conf, tmp_path):
    # One good trial, then, in the same study, a learning rate too small to learn anything:
    # its validation curve is worse than the median at every epoch.
    sweep(
        conf,
        tmp_path,
        "trainer.max_epochs=4",
        "optim.lr=0.3",
        "hydra.sweeper.n_trials=1",
        search="noise",
    )
    sweep(
        conf,
        tmp_path,
        "trainer.max_epochs=4",
        "optim.lr=1e-9",
        "hydra.sweeper.n_trials=2",
        search="noise",
    )
    done = trials(tmp_path)
    assert [t.state for t in done] == [TrialState.COMPLETE, TrialState.PRUNED]
    _, runs = mlflow_runs(tmp_path)
    pruned = [r for r in runs if r.data.tags.get("ablate.pruned") == "true"]
    assert len(pruned) == 1 and pruned[0].data.tags["optuna.trial"] == "1"
    assert pruned[0].info.status == "KILLED"


def test_a_changed_search_space_is_refused(conf, tmp_path):
    sweep(conf, tmp_path, "hydra.sweeper.n_trials=1")
    result = sweep(
        conf,
        tmp_path,
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.params.optim.lr.high=0.5",
        check=False,
    )
    assert result.returncode == 1
    assert "search space of study 'default/nig/digits' changed" in result.stderr


@pytest.mark.parametrize(
    "space,message",
    [
        (
            ["hydra.sweeper.params.optim.lr.low=0.5", "hydra.sweeper.params.optim.lr.high=0.1"],
            "search space: optim.lr: low (0.5) > high (0.1)",
        ),
        (["hydra.sweeper.params.optim.lr.low=0.0"], "a log scale needs low > 0"),
        (
            ["+hydra.sweeper.params.optim.lrr={type: float, low: 0.1, high: 0.2}"],
            "search space: optim.lrr: no such config key",
        ),
    ],
)
def test_bad_search_space_is_refused_before_anything_is_written(conf, tmp_path, space, message):
    result = sweep(conf, tmp_path, *space, check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()


def test_n_trials_must_be_positive(conf, tmp_path):
    result = sweep(conf, tmp_path, "hydra.sweeper.n_trials=0", check=False)
    assert result.returncode == 1 and "n_trials must be a positive integer" in result.stderr


def test_a_sweep_that_fails_everywhere_stops(conf, tmp_path):
    result = sweep(conf, tmp_path, "cell=linear", "model.init_scale=1e6", check=False)
    assert result.returncode == 1
    assert "sweep stopped: 4 of 4 trials failed" in result.stderr
    done = trials(tmp_path, "default/linear/digits")
    assert len(done) == 4 and all(t.system_attrs["ablate:error"] == "diverged" for t in done)


def test_journal_storage(conf, tmp_path):
    journal = tmp_path / "study.log"
    sweep(conf, tmp_path, "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage=journal://{journal}")
    sweep(conf, tmp_path, "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage=journal://{journal}")
    from ablate.search.storage import open_storage

    study = optuna.load_study(study_name="default/nig/digits",
                              storage=open_storage(f"journal://{journal}"))
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 2
    assert not (tmp_path / "optuna.db").exists()


def test_a_joblib_pool_gets_long_batches_and_each_job_ends_its_own_trial(conf, tmp_path):
    """Random search on a pool: one launch of all 6 trials, two at a time, so a worker starts a
    trial as soon as it is free; each trial is COMPLETE when its job ends, not when the batch
    does."""
    result = sweep(
        conf, tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2", "threads=1",
    )
    assert "is launching 6 jobs" in result.stdout + result.stderr
    done = trials(tmp_path)
    assert [t.state for t in done] == [TrialState.COMPLETE] * 6
    _, runs = mlflow_runs(tmp_path)
    jobs = [r for r in runs if r.data.tags.get("ablate.kind") == "job"]
    last_start = max(r.info.start_time for r in jobs) / 1000
    first_end = min(t.datetime_complete.timestamp() for t in done)
    assert first_end < last_start, "trials ended together, at the end of the batch"


def test_batch_size_sets_the_trials_per_launch(conf, tmp_path):
    result = sweep(conf, tmp_path, "hydra.sweeper.batch_size=3")
    log = result.stdout + result.stderr
    assert log.count("Launching 3 jobs locally") == 2
    assert [t.state for t in trials(tmp_path)] == [TrialState.COMPLETE] * 6
    bad = sweep(conf, tmp_path, "hydra.sweeper.batch_size=0", check=False)
    assert bad.returncode == 1 and "batch_size must be a positive integer or null" in bad.stderr


@pytest.mark.parametrize(
    "launcher,sampler,n_jobs,expected",
    [
        ("joblib", "random", 2, 32),
        ("joblib", "grid", 1, 16),
        ("joblib", "tpe", 2, 2),  # TPE learns from each result: a batch no longer than the pool
        ("basic", "random", 2, 2),  # one job at a time in this process: nothing to gain
    ],
)
def test_auto_batch_size(launcher, sampler, n_jobs, expected):
    from hydra._internal.core_plugins.basic_launcher import BasicLauncher
    from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher

    from ablate.search.sweep import SweepSettings, auto_batch_size

    settings = SweepSettings(
        n_trials=10, n_jobs=n_jobs, sampler={"name": sampler}, pruner={}, storage=None,
        study_name=None, params={}, grid={}, max_failure_rate=0.5, heartbeat_interval=30,
        grace_period=120,
    )
    pool = JoblibLauncher(n_jobs=n_jobs) if launcher == "joblib" else BasicLauncher()
    assert auto_batch_size(settings, pool) == expected


def test_batches_smaller_than_the_sweep_go_round_every_study(conf, tmp_path):
    """Three studies, two trials a launch: the second launch starts with the study the first
    left out, so a sweep stopped part way leaves its studies about equally far (each launch
    used to start again from the first study, starving the last ones)."""
    sweep(
        conf, tmp_path, "cell=nig,nfg,nog", "hydra.sweeper.n_trials=2", "hydra.sweeper.batch_size=2"
    )
    launched = sorted(
        (t.datetime_start, cell)
        for cell in ("nig", "nfg", "nog")
        for t in trials(tmp_path, f"default/{cell}/digits")
    )
    assert len(launched) == 6
    assert {cell for _, cell in launched[:3]} == {"nig", "nfg", "nog"}
