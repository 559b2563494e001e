"""A short real training run per task, composed from the shipped configs, tracked in MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from ablate.paths import config_dir
from ablate.tasks import TASKS
from ablate.train.app import run_job
from tests.conftest import mlflow_runs
from tests.tasks.helpers import SMALL, write_framewise, write_ptb


def compose_job(overrides: list[str], job_dir: Path, root: Path):
    """The config `ablate train OVERRIDES` would run, with Hydra's runtime filled in."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(job_dir)
        cfg.hydra.runtime.cwd = str(root)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.mark.parametrize("task", sorted(TASKS))
def test_short_run_per_task(task, tmp_path):
    options = dict(SMALL[task])
    if task == "ptb":
        options["data_dir"] = str(write_ptb(tmp_path / "ptb"))
    if task == "framewise":
        options["data_dir"] = str(write_framewise(tmp_path / "frames"))
    overrides = [
        f"task={task}",
        "cell=cifg",
        "model.hidden_size=8",
        "trainer.max_epochs=2",
        "trainer.max_batches=4",
        "trainer.eval_batch_size=8",
        "optim.lr=0.05",
        "threads=1",
        f"tracking.root={tmp_path}",
    ]
    overrides += [f"task.{k}={v}" for k, v in options.items()]
    cfg = compose_job(overrides, tmp_path / "job", tmp_path)
    outcome = run_job(cfg)
    assert outcome.state == "complete"
    value = outcome.value
    _, runs = mlflow_runs(tmp_path)
    (run,) = runs
    assert run.info.status == "FINISHED"
    metric = TASKS[task].metric
    assert run.data.metrics[f"best_valid_{metric}"] == pytest.approx(value)
    assert f"test_{metric}" in run.data.metrics
    assert run.data.params["task.name"] == task
    assert (tmp_path / "job" / "checkpoint.pt").is_file()
