"""`ablate train` end to end: real subprocesses, a real sqlite MLflow store in a temp dir."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ctrl_c_reaches_child, mlflow_runs, run_ablate

FAST = ["task=digits", "model.hidden_size=8", "trainer.max_epochs=2", "optim.lr=0.05"]


def test_help_lists_subcommands(tmp_path):
    out = run_ablate("--help", cwd=tmp_path).stdout
    for command in ("train", "cells", "ui", "bench"):
        assert f"\n  {command} " in out


def test_single_run_is_fully_tracked(tmp_path):
    run_ablate("train", "cell=cifg", *FAST, "seed=3", cwd=tmp_path)
    client, runs = mlflow_runs(tmp_path)
    (run,) = runs
    assert run.info.status == "FINISHED"
    params, tags, metrics = run.data.params, run.data.tags, run.data.metrics
    assert params["cell.name"] == "cifg" and params["cell.coupled"] == "True"
    assert params["model.hidden_size"] == "8" and params["optim.lr"] == "0.05"
    assert params["task.name"] == "digits" and params["seed"] == "3"
    assert tags["cell"] == "cifg" and tags["task"] == "digits" and tags["seed"] == "3"
    assert (
        tags["study"] == "default"
        and len(tags["git_commit"]) in (40, 7)
        or tags["git_commit"] == "unknown"
    )
    for key in ("best_valid_error", "test_error", "num_parameters", "epochs", "train_seconds"):
        assert key in metrics
    assert metrics["epochs"] == 2
    history = client.get_metric_history(run.info.run_id, "valid_error")
    assert [m.step for m in history] == [1, 2]
    assert {m.key for m in [*client.get_metric_history(run.info.run_id, "train_loss")]} == {
        "train_loss"
    }
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "overrides.yaml", "learning_curve.png", "model.pt"} <= artifacts
    weights = client.download_artifacts(run.info.run_id, "model.pt", str(tmp_path))
    state = torch.load(weights, weights_only=True)
    assert any(k.startswith("rnn.layers.0.weight_hh") for k in state)
    png = client.download_artifacts(run.info.run_id, "learning_curve.png", str(tmp_path))
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # MLflow's UI shows the experiment in its model-training view, not the GenAI one
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_multirun_groups_jobs_under_one_parent(tmp_path):
    run_ablate("train", "-m", "cell=nig,nog", *FAST, cwd=tmp_path)
    _, runs = mlflow_runs(tmp_path)
    parents = [r for r in runs if r.data.tags.get("ablate.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("ablate.kind") == "job"]
    assert len(parents) == 1 and len(children) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert {r.data.tags["cell"] for r in children} == {"nig", "nog"}
    assert all(r.info.status == "FINISHED" for r in runs)
    assert sorted(r.data.tags["hydra.job_num"] for r in children) == ["0", "1"]


def test_diverging_run_fails_and_the_sweep_goes_on(tmp_path):
    conf = tmp_path / "myconf" / "cell"
    conf.mkdir(parents=True)
    # A linear Elman RNN with huge weights overflows to inf/NaN in the first batch.
    (conf / "linear.yaml").write_text("name: linear\nkind: elman\nblock_activation: identity\n")
    run_ablate(
        "train",
        "-m",
        "--config-dir",
        str(tmp_path / "myconf"),
        "cell=linear,np",
        "model.init_scale=1e6",
        *FAST,
        cwd=tmp_path,
    )
    _, runs = mlflow_runs(tmp_path)
    jobs = {r.data.tags["cell"]: r for r in runs if r.data.tags.get("ablate.kind") == "job"}
    assert jobs["linear"].info.status == "FAILED"
    assert (
        "nan" in jobs["linear"].data.tags["failure_reason"]
        or "inf" in jobs["linear"].data.tags["failure_reason"]
    )
    assert jobs["np"].info.status == "FINISHED"


def _metrics(root):
    client, runs = mlflow_runs(root)
    (run,) = [r for r in runs if r.data.tags.get("ablate.kind") == "job"]
    history = {
        key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
        for key in ("train_loss", "valid_error", "valid_loss")
    }
    final = {k: v for k, v in run.data.metrics.items() if k.startswith(("test_", "best_valid"))}
    return run, history, final


def test_same_config_and_seed_give_identical_metrics(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        run_ablate("train", "cell=vanilla", *FAST, "model.input_noise=0.3", cwd=tmp_path / name)
    _, hist_a, final_a = _metrics(tmp_path / "a")
    _, hist_b, final_b = _metrics(tmp_path / "b")
    assert hist_a == hist_b and final_a == final_b


def test_resume_after_kill_equals_uninterrupted_run(tmp_path):
    args = [
        "train",
        "cell=vanilla",
        "task=digits",
        "model.hidden_size=16",
        "optim.lr=0.05",
        "trainer.max_epochs=6",
        "trainer.patience=10",
        "model.input_noise=0.2",
    ]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    whole.mkdir()
    broken.mkdir()
    run_ablate(*args, cwd=whole)

    proc = subprocess.Popen(
        [sys.executable, "-m", "ablate", *args],
        cwd=broken,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    checkpoints = []
    while time.time() < deadline and not checkpoints and proc.poll() is None:
        checkpoints = list((broken / "outputs").rglob("checkpoint.pt"))
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoints, "the job wrote no checkpoint before it ended"
    done_epoch = torch.load(checkpoints[0], weights_only=True)["epoch"]
    assert done_epoch < 6, "the job finished before it could be interrupted"

    run_ablate(*args, cwd=broken)
    run_w, hist_w, final_w = _metrics(whole)
    run_b, hist_b, final_b = _metrics(broken)
    assert run_b.info.status == "FINISHED"
    assert hist_w == {k: v for k, v in hist_b.items()}
    assert final_w == final_b


def test_ctrl_c_ends_the_run_killed(tmp_path):
    args = [
        "train",
        "cell=vanilla",
        "task=digits",
        "model.hidden_size=16",
        "trainer.max_epochs=200",
        "trainer.patience=200",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ablate", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_reaches_child,
    )
    deadline = time.time() + 240
    while time.time() < deadline and not list((tmp_path / "outputs").rglob("checkpoint.pt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    _, runs = mlflow_runs(tmp_path)
    (run,) = runs
    assert run.info.status == "KILLED"


@pytest.mark.parametrize(
    "override,message",
    [
        ("cell=nope", "Could not find 'cell/nope'"),
        ("task=nope", "Could not find 'task/nope'"),
        ("optim=nope", "Could not find 'optim/nope'"),
        ("model.hiden_size=8", "Key 'hiden_size' is not in struct"),
        ("model.hidden_size=-4", "model.hidden_size must be a positive integer"),
        ("model.hidden_size=abc", "model.hidden_size must be a positive integer"),
        ("optim.lr=0", "optim.lr must be a finite number > 0, got 0"),
        ("trainer.max_epochs=0", "trainer.max_epochs must be a positive integer"),
    ],
)
def test_bad_overrides_exit_nonzero_with_their_message(tmp_path, override, message):
    args = [override] if override.startswith("task=") else ["task=digits", override]
    result = run_ablate("train", *args, cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    if (tmp_path / "mlflow.db").exists():
        _, runs = mlflow_runs(tmp_path)
        assert runs == [], "a refused job must not leave a run in the store"
