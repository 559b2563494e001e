"""Beyond one process: submitit's local executor (the SLURM launcher's stand-in) and an MLflow
tracking server on 127.0.0.1, with the real CLI."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import mlflow
import pytest

from tests.conftest import mlflow_runs, run_ablate

FAST = ["task=digits", "cell=np", "model.hidden_size=8", "trainer.max_epochs=1"]


def test_submitit_local_launcher_runs_a_multirun(tmp_path):
    run_ablate(
        "train",
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        "seed=0,1",
        *FAST,
        cwd=tmp_path,
        timeout=600,
    )
    _, runs = mlflow_runs(tmp_path)
    jobs = [r for r in runs if r.data.tags.get("ablate.kind") == "job"]
    parents = [r for r in runs if r.data.tags.get("ablate.kind") == "sweep"]
    assert sorted(r.data.tags["seed"] for r in jobs) == ["0", "1"]
    assert all(r.info.status == "FINISHED" for r in jobs)
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parents[0].info.run_id}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tracking_server(tmp_path):
    port = _free_port()
    store = tmp_path / "server"
    store.mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{store / 'mlflow.db'}",
            "--artifacts-destination",
            str(store / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    yield uri
    proc.terminate()
    proc.wait(timeout=30)


def test_runs_go_to_a_tracking_server(tmp_path, tracking_server):
    run_ablate("train", *FAST, f"tracking.uri={tracking_server}", cwd=tmp_path)
    client = mlflow.MlflowClient(tracking_uri=tracking_server)
    (run,) = client.search_runs([client.get_experiment_by_name("default").experiment_id])
    assert run.info.status == "FINISHED" and "test_error" in run.data.metrics
    assert not (tmp_path / "mlflow.db").exists()


def test_an_unreachable_tracking_server_is_refused_before_training(tmp_path):
    port = _free_port()  # nothing listens there
    result = run_ablate(
        "train", *FAST, f"tracking.uri=http://127.0.0.1:{port}", cwd=tmp_path, check=False
    )
    assert result.returncode == 1
    assert f"tracking server http://127.0.0.1:{port} is unreachable" in result.stderr
    assert "epoch 1" not in result.stdout + result.stderr
