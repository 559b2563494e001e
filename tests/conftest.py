"""Shared fixtures: real subprocesses of the installed CLI, real MLflow stores in temp dirs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's caches or tracking server."""
    cache = tmp_path_factory.getbasetemp() / "ablate-cache"
    monkeypatch.setenv("ABLATE_CACHE_DIR", str(cache))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("ABLATE_MLFLOW_PARENT_RUN_ID", raising=False)


def run_ablate(
    *args: str,
    cwd: Path,
    timeout: float = 300,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The real `ablate` command in a subprocess, as a user runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "ablate", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"ablate {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def mlflow_runs(root: Path, experiment: str = "default"):
    """All runs of ``experiment`` in the default store under ``root``, via the plain client."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r} in {root}"
    return client, client.search_runs([exp.experiment_id], max_results=10_000)


def ctrl_c_reaches_child() -> None:
    """Popen(preexec_fn=...): SIGINT handled as in a terminal, even when the test run itself
    was started in the background, where SIGINT is ignored and children inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
