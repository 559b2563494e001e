"""Hydra callback: create the MLflow store, experiment and a multirun's parent run up front.

It runs in the launching process before any job, so parallel jobs never race to create the
sqlite schema or the experiment, and every job of a multirun hangs under one parent run. A
config that would be refused creates nothing: the job then reports the problem in one line.
ablate's own sweeper does this itself (after checking its search space), per study.
"""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from ablate.errors import AblateError
from ablate.tracking import PARENT_RUN_ENV, TrackedRun, ensure_experiment, tracking_uri


class MlflowCallback(Callback):
    def __init__(self) -> None:
        self.parent: TrackedRun | None = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _writable(str(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _writable(str(config.hydra.sweep.dir))
        if str(config.hydra.sweeper.get("_target_", "")).endswith("AblateSweeper"):
            return
        experiment_id = self._experiment(config)
        if experiment_id is None:
            return
        hydra = config.hydra  # HydraConfig is not set yet in the launching process
        overrides = " ".join(hydra.overrides.task)
        self.parent = TrackedRun.create(
            _uri(config),
            experiment_id,
            name=f"sweep: {overrides}"[:250],
            tags={
                "ablate.kind": "sweep",
                "study": str(config.study),
                "hydra.sweep_dir": str(hydra.sweep.dir),
                "hydra.overrides": overrides,
            },
        )
        os.environ[PARENT_RUN_ENV] = self.parent.run_id
        # Ended FAILED if the process dies before on_multirun_end (a job raised, Ctrl-C).
        atexit.register(self._end, "FAILED")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._end("FINISHED")

    def _experiment(self, config: DictConfig) -> str | None:
        """The experiment's id, made if need be, unless the config will be refused."""
        from ablate.train.app import check

        job = config.copy()
        with open_dict(job):
            job.pop("hydra")
        try:
            plain = OmegaConf.to_container(job, resolve=True)
            assert isinstance(plain, dict)
            check(plain)
        except AblateError:
            return None  # the job itself reports it, with nothing written
        return ensure_experiment(
            _uri(config), str(config.tracking.experiment), config.tracking.root
        )

    def _end(self, status: str) -> None:
        if self.parent is not None:
            self.parent.end(status)
            self.parent = None
            os.environ.pop(PARENT_RUN_ENV, None)


def _writable(folder: str) -> None:
    """Hydra would fail on an unwritable output folder with a traceback; say it in one line.
    (SystemExit, because Hydra turns a callback's exceptions into warnings.)"""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        probe = Path(folder) / ".ablate-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        print(
            f"ablate train: error: output folder {folder} cannot be written ({err.strerror})",
            file=sys.stderr,
        )
        raise SystemExit(1) from None


def _uri(config: DictConfig) -> str:
    return tracking_uri(config.tracking.uri, config.tracking.root)
