"""Hydra callback: create the MLflow store, experiment and a multirun's parent run up front;
and make the jobs that a launcher runs in worker processes die with their sweep.

It runs in the launching process before any job, so parallel jobs never race to create the
sqlite schema or the experiment, and every job of a multirun hangs under one parent run. A
config that would be refused creates nothing: the job then reports the problem in one line.
ablate's own sweeper does this itself (after checking its search space), per study.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from ablate.errors import AblateError
from ablate.tracking import PARENT_RUN_ENV, TrackedRun, ensure_experiment, tracking_uri

log = logging.getLogger("ablate")

SWEEP_PID_ENV = "ABLATE_SWEEP_PID"  # the process that launches a multirun's jobs


class MlflowCallback(Callback):
    def __init__(self) -> None:
        self.parent: TrackedRun | None = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _writable(str(config.hydra.run.dir))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = os.environ.get(SWEEP_PID_ENV, "")
        # A worker process that the sweep started itself (a pool's); not a cluster's job.
        if sweep.isdigit() and int(sweep) != os.getpid() and (_gone or os.getppid() == int(sweep)):
            die_with_sweep(int(sweep))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _writable(str(config.hydra.sweep.dir))
        # Inherited by the worker processes a launcher starts (joblib's loky pool).
        os.environ[SWEEP_PID_ENV] = str(os.getpid())
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


class SweepGone(KeyboardInterrupt):
    """Raised in a job whose sweep process is gone: the job ends as on Ctrl-C (its MLflow run
    KILLED; its Optuna trial left RUNNING, for the next sweep to give back and run again)."""


_gone: Callable[[], bool] | None = None  # whether this worker's sweep is gone
# Set once the sweep is found gone. The watcher raises SweepGone in the job's thread, but an
# exception raised that way is lost if it lands in a garbage-collection callback (Python
# prints "Exception ignored" and goes on); training loops also look here at every step.
_sweep_gone = threading.Event()


_stopping = threading.Event()  # a training loop has raised SweepGone: the job is ending


def check_sweep() -> None:
    """Raise SweepGone in a job whose sweep is gone (called by the training loops)."""
    if _sweep_gone.is_set():
        _stopping.set()
        raise SweepGone("the sweep that launched this job is gone")
# Seconds: how often a worker looks for its sweep; how long its job may take to end then
# (more than MLflow's 20 s wait for a busy sqlite store, so the job can close its run).
POLL, GRACE = 0.2, 30.0
COOPERATE = 5.0  # seconds a training loop has to stop by itself at its next step


def die_with_sweep(sweep_pid: int) -> None:
    """End this worker process when the sweep that launched it is gone (e.g. SIGKILLed): an
    orphan would hold the stores open, go on training, and could finish a trial that the
    next sweep runs again. Called as each job starts.

    A thread watches the parent pid (an orphan is re-parented); when the sweep is gone,
    SweepGone is raised in the job, the job's own child processes are stopped, and the
    process exits as soon as the job has ended (closing its MLflow run), or GRACE seconds
    later whatever it is doing; at once between jobs (a loky worker would wait for work
    forever), and before a job that was queued for it (loky sends a worker its next job
    ahead). Not PR_SET_PDEATHSIG: it fires when the parent
    *thread* that forked the worker ends, and loky starts workers from its manager thread
    too.
    """
    global _gone
    if _gone is None:
        _gone = _watch(sweep_pid)
    if _gone():
        log.error("the sweep (pid %d) that queued this job is gone: not starting it", sweep_pid)
        os._exit(1)


def _watch(sweep_pid: int) -> Callable[[], bool]:
    def gone() -> bool:
        return os.getppid() != sweep_pid

    main = threading.main_thread().ident
    assert main is not None

    def watch() -> None:
        while not gone():
            time.sleep(POLL)
        _sweep_gone.set()
        if _in_job(main):
            log.error("the sweep (pid %d) that launched this job is gone: stopping", sweep_pid)
            # A training loop stops at its next step (check_sweep), between database writes;
            # an exception raised from here could land inside one and leave the store locked
            # for every process. It is raised only where the job has not stopped by then.
            cooperate = time.monotonic() + COOPERATE
            while _in_job(main) and not _stopping.is_set() and time.monotonic() < cooperate:
                time.sleep(0.05)
        if _in_job(main) and not _stopping.is_set():
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(main), ctypes.py_object(SweepGone)
            )
        # The job's own children (a kernel build's compilers): the job, waiting for them,
        # hears SweepGone when they end, and its `finally` blocks run (the build's lock file).
        _stop_children()
        deadline = time.monotonic() + GRACE
        while _in_job(main) and time.monotonic() < deadline:
            time.sleep(0.05)
        os._exit(1)

    threading.Thread(target=watch, name="ablate-sweep-watch", daemon=True).start()
    return gone


def _in_job(thread: int) -> bool:
    """Whether the thread is running a job: Hydra's run_job, or a batched launcher's group
    (whose jobs train after their run_job set them up), is on its stack."""
    from hydra.core.utils import run_job

    from ablate.stack.launch import execute_group

    codes = (run_job.__code__, execute_group.__code__)
    frame = sys._current_frames().get(thread)
    while frame is not None:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False


def _stop_children(grace: float = 3.0) -> None:
    import psutil

    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.send_signal(signum)
        _, children = psutil.wait_procs(children, timeout=grace)
        if not children:
            return
