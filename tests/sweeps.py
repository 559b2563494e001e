"""Tiny real sweeps for tests: a search space, a user config folder, and the Optuna trials;
and what `ps` says about the processes a command left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import optuna
import psutil

from tests.conftest import run_ablate

TINY_SEARCH = """\
# @package _global_
defaults:
  - override /hydra/sweeper: ablate
hydra:
  sweeper:
    n_trials: 6
    sampler: {name: random, seed: 0}
    heartbeat_interval: 1
    grace_period: 5
    params:
      optim:
        lr: {type: float, low: 0.01, high: 0.3, log: true}
      model:
        input_noise: {type: float, low: 0.0, high: 0.5}
"""
FAST = ["task=digits", "cell=nig", "model.hidden_size=8", "trainer.max_epochs=2"]


def write_conf(tmp_path: Path) -> Path:
    """A user config folder: search spaces `tiny` and `noise`, and a cell that diverges."""
    folder = tmp_path / "conf"
    (folder / "search").mkdir(parents=True)
    (folder / "search" / "tiny.yaml").write_text(TINY_SEARCH)
    (folder / "search" / "noise.yaml").write_text(  # for the pruner: the lr is set per run
        TINY_SEARCH.replace(
            "      optim:\n        lr: {type: float, low: 0.01, high: 0.3, log: true}\n", ""
        ).replace("    params:", "    pruner: {name: median, n_startup_trials: 1}\n    params:")
    )
    (folder / "cell").mkdir()
    (folder / "cell" / "linear.yaml").write_text(
        "name: linear\nkind: elman\nblock_activation: identity\n"
    )
    return folder


def sweep_command(conf: Path, *extra: str, search: str = "tiny") -> list[str]:
    """`ablate train -m` of a tiny search with the user config folder ``conf``."""
    return [
        sys.executable,
        "-m",
        "ablate",
        "train",
        "-m",
        "--config-dir",
        str(conf),
        f"search={search}",
        *FAST,
        *extra,
    ]


def sweep(conf: Path, root: Path, *extra: str, check: bool = True, search: str = "tiny"):
    return run_ablate(*sweep_command(conf, *extra, search=search)[3:], cwd=root, check=check)


def trials(root: Path, name: str = "default/nig/digits") -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{root / 'optuna.db'}"
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


# -- processes -------------------------------------------------------------------------------


def family(pid: int) -> list[psutil.Process]:
    """Every process below ``pid`` now (children, their children, ...), as `ps` shows them."""
    return psutil.Process(pid).children(recursive=True)


def _up(proc: psutil.Process) -> bool:
    """Running (a zombie has ended: it holds no file, and only waits for its parent)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def ps_lines(procs: Iterable[psutil.Process]) -> list[str]:
    lines = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            lines.append(f"{proc.pid} ppid={proc.ppid()} {' '.join(proc.cmdline())[:160]}")
    return lines


def left_behind(procs: Iterable[psutil.Process], timeout: float) -> list[str]:
    """The `ps` lines of those of ``procs`` still running after up to ``timeout`` seconds."""
    procs = list(procs)
    deadline = time.monotonic() + timeout
    while any(_up(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    return ps_lines(p for p in procs if _up(p))


class Spawned:
    """A command in a session of its own. Every process seen below it (:meth:`below`) and
    whatever is left of its session are SIGKILLed on exit, so a failing test leaves nothing
    running; only these, never processes found by name."""

    def __init__(self, command: list[str], cwd: Path, **popen) -> None:
        self.proc = subprocess.Popen(command, cwd=cwd, start_new_session=True, **popen)
        self.seen: dict[int, psutil.Process] = {}

    def below(self) -> list[psutil.Process]:
        """The processes below the command now, as `ps` shows them."""
        procs = family(self.proc.pid)
        self.seen.update({p.pid: p for p in procs})
        return procs

    def __enter__(self) -> Spawned:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(psutil.Error):
            self.below()
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for child in self.seen.values():
            with contextlib.suppress(psutil.Error):
                child.kill()
        self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
