"""``hydra/launcher=batched``: a launch's jobs trained in groups, each group one stacked model.

The launcher groups the jobs of a launch that differ only in per-trial settings
(:data:`PER_TRIAL`), by their overrides, and sorts each such set by hidden size so that a
group pads little; ``n_jobs`` worker processes then take one group at a time. In a worker,
each job is set up as Hydra runs any job (its folder, config files, log, callbacks) and as
``ablate train`` prepares it (its task, seeded model, MLflow run, Optuna trial); the group
trains as one stacked model (:func:`ablate.stack.train_group`), or trial by trial where it
cannot stack (no C++ kernel for the cell, a GPU); then each job's run and trial end exactly
as they end alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals
from hydra.types import HydraContext
from omegaconf import DictConfig, open_dict

from ablate.search.trial import JobOutcome
from ablate.stack.group import GroupMember, can_stack, train_group
from ablate.train.app import (
    TrackedJob,
    close_tracking,
    open_tracking,
    prepare,
    trial_reporter,
)
from ablate.train.loop import TrainResult

log = logging.getLogger("ablate")

# Settings each trial of a group may have its own of: its scalars, its hidden size, what
# only its initialisation, schedule or bookkeeping reads.
PER_TRIAL = (
    "seed",
    "model.hidden_size",
    "model.input_noise",
    "model.init",
    "model.init_scale",
    "model.forget_bias",
    "optim.lr",
    "optim.momentum",
    "optim.weight_decay",
    "optim.clip_norm",
    "optim.betas",
    "optim.schedule",
    "optim.decay_epochs",
    "optim.decay_factor",
    "trainer.max_epochs",
    "trainer.patience",
    "trainer.checkpoint",
    "trainer.resume",
    "trainer.progress",
    "threads",
    "sweep",
    "tracking",
)

Result = TrainResult | BaseException


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _per_trial(key: str) -> bool:
    return any(key == p or key.startswith(p + ".") for p in PER_TRIAL)


def group_jobs(
    job_overrides: Sequence[Sequence[str]], group_size: int, max_padding: float
) -> list[list[int]]:
    """The launch's job indices in groups of at most ``group_size`` that may stack: equal in
    every override but the per-trial ones, sorted by hidden size, the largest in a group at
    most ``max_padding`` times its smallest (a group computes every trial at its largest
    size: the kernels' work grows with its square)."""
    sets: dict[tuple[str, ...], list[int]] = {}
    for index, overrides in enumerate(job_overrides):
        shared = tuple(sorted(o for o in overrides if not _per_trial(_key(o))))
        sets.setdefault(shared, []).append(index)
    groups: list[list[int]] = []
    for indices in sets.values():
        indices.sort(key=lambda i: (_hidden_size(job_overrides[i]), i))
        group: list[int] = []
        for i in indices:
            smallest = _hidden_size(job_overrides[group[0]]) if group else 0.0
            if group and (
                len(group) == group_size or _hidden_size(job_overrides[i]) > max_padding * smallest
            ):
                groups.append(group)
                group = []
            group.append(i)
        groups.append(group)
    return groups


def _hidden_size(overrides: Sequence[str]) -> float:
    for o in overrides:
        if _key(o) == "model.hidden_size":
            try:
                return float(o.split("=", 1)[1])
            except ValueError:
                return 0.0
    return 0.0


def _log_file() -> str | None:
    """The file the root logger writes to: the last job's, once Hydra has set it up."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    return files[-1].baseFilename if files else None


@contextmanager
def _logging_to(path: str | None) -> Iterator[None]:
    """The root logger's file output in ``path`` (a job's own log) meanwhile: a group's
    jobs share a process, and each job's lines belong in its own log."""
    root = logging.getLogger()
    files = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
    if path is None or not files or files[-1].baseFilename == path:
        yield
        return
    mine = logging.FileHandler(path)
    mine.setFormatter(files[-1].formatter)
    mine.setLevel(files[-1].level)
    for handler in files:
        root.removeHandler(handler)
    root.addHandler(mine)
    try:
        yield
    finally:
        root.removeHandler(mine)
        mine.close()
        for handler in files:
            root.addHandler(handler)


def _open(cfg: DictConfig) -> TrackedJob | JobOutcome:
    """A job's set-up, run by Hydra's ``run_job`` like any task function: prepared, its run
    open, or the outcome of a job that had already finished."""
    job = prepare(cfg)
    reporter = trial_reporter(cfg)
    tracked = open_tracking(cfg, job, reporter)
    if isinstance(tracked, JobOutcome) and reporter is not None:
        reporter.finish(tracked)
    return tracked


def execute_group(
    first_index: int,
    job_overrides: Sequence[Sequence[str]],
    places: Sequence[int],
    hydra_context: HydraContext,
    config: DictConfig,
    singleton_state: dict[Any, Any],
) -> list[JobReturn]:
    """One group, in a worker process: set up each job, train, end each job's run. ``places``:
    the jobs' places in the launch, which number them."""
    setup_globals()
    Singleton.set_state(singleton_state)
    returns: list[JobReturn] = []
    logs: list[str | None] = []
    for place, overrides in zip(places, job_overrides, strict=True):
        number = first_index + place
        sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{number}"
            sweep_config.hydra.job.num = number
        HydraConfig.instance().set_config(sweep_config)
        returns.append(
            run_job(
                hydra_context=hydra_context,
                config=sweep_config,
                task_function=_open,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
        )
        logs.append(_log_file())  # the job's own log, which Hydra has just opened
    tracked = {
        k: ret.return_value
        for k, ret in enumerate(returns)
        if ret.status is JobStatus.COMPLETED and isinstance(ret.return_value, TrackedJob)
    }
    scopes = {k: (lambda path=logs[k]: _logging_to(path)) for k in tracked}
    results: dict[int, Result] = {}
    try:
        _train(tracked, sorted(tracked), results, scopes)
    except BaseException as err:  # noqa: BLE001 - Ctrl-C or a gone sweep: every run ends KILLED
        for k in tracked:
            results.setdefault(k, err)
    interrupted: BaseException | None = None
    for k, job in tracked.items():
        ret = returns[k]
        try:
            with scopes[k]():
                outcome = close_tracking(job, results[k])
        except KeyboardInterrupt as err:
            interrupted = err
            continue
        except Exception as err:  # noqa: BLE001 - recorded as the job's failure, as run_job does
            ret.return_value, ret.status = err, JobStatus.FAILED
            continue
        if job.reporter is not None:
            job.reporter.finish(outcome)
        ret.return_value, ret.status = outcome, JobStatus.COMPLETED
    if interrupted is not None:
        raise interrupted
    return returns


def _train(
    tracked: dict[int, TrackedJob],
    indices: list[int],
    results: dict[int, Result],
    scopes: dict[int, Callable[[], AbstractContextManager[object]]],
) -> None:
    """Train the jobs as one stacked model where they stack; else split them by hidden size
    (a cell that adds raw x to its units stacks equal sizes only), else one by one."""
    if not indices:
        return
    trainers = [tracked[k].job.trainer for k in indices]
    reason = can_stack(trainers) if len(indices) > 1 else "one trial"
    if reason is None:
        log.info("training %d trials as one stacked model", len(indices))
        members = [
            GroupMember(tracked[k].job.trainer, tracked[k].resume, tracked[k].on_epoch, scopes[k])
            for k in indices
        ]
        results.update(zip(indices, train_group(members), strict=True))
        return
    sizes = sorted({t.model.rnn.hidden_size for t in trainers})
    if len(sizes) > 1 and len(indices) > 1:
        for size in sizes:
            _train(
                tracked,
                [k for k in indices if tracked[k].job.model.rnn.hidden_size == size],
                results,
                scopes,
            )
        return
    if len(indices) > 1:
        log.info("training %d trials one by one: %s", len(indices), reason)
    for k in indices:
        job = tracked[k]
        trainer = job.job.trainer
        torch.set_rng_state(trainer.initial_rng)  # where this job's own seed left it
        try:
            with scopes[k]():
                results[k] = trainer.fit(on_epoch=job.on_epoch, resume=job.resume)
        except KeyboardInterrupt:
            raise
        except Exception as err:  # noqa: BLE001 - the job ends with it; the others go on
            results[k] = err
