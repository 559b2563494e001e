"""The sweep loop behind ``hydra/sweeper=ablate``: one Optuna study per grid combination
(e.g. per preset and task, as Greff ran them), trials launched in batches through Hydra's
launcher and told back to Optuna.

Resumable by construction: ``n_trials`` is a total per study, counted in the storage, so a
rerun of the same command runs only what is missing, and workers started with the same
command split the work. A trial whose worker died (same host: its process is gone; anywhere:
its heartbeat is older than ``grace_period``) is marked FAILED, its MLflow run closed, and its
parameters queued again, so the retry resumes from the job's checkpoint.

Sweeps of one study at once (workers) share one MLflow parent run: the sweep that creates the
study makes it and records it in the study; the others wait for it. On a store in a file
(sqlite, journal), the sweeps of one host take turns to ask trials, under a lock beside it, so
a study full at last is never asked for more.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, Trial, TrialState

from ablate.errors import AblateError
from ablate.progress import StudyBars
from ablate.search import components
from ablate.search.samplers import build_pruner, build_sampler
from ablate.search.space import Dimension, parse_space
from ablate.search.storage import JOURNAL, open_storage, storage_url
from ablate.search.trial import (
    BEAT_ATTR,
    ERROR_ATTR,
    HOST_ATTR,
    MLFLOW_RUN_ATTR,
    PID_ATTR,
    SURPLUS_ATTR,
    JobOutcome,
    counted,
    process_alive,
    sweep_gone,
)
from ablate.status import progress, summary
from ablate.tasks import task_class
from ablate.tracking import TrackedRun, client, ensure_experiment, redact, tracking_uri

log = logging.getLogger("ablate")

RETRY_ATTR = "ablate:retry_of"
GIVEN_BACK_ATTR = "ablate:given_back"  # why a trial that did not finish was ended
PARENT_ATTR = "ablate:mlflow_parent_run_id"  # a study's system attr: its MLflow parent run
PARENT_WAIT = 60.0  # seconds a sweep waits for the sweep that created its study to make the parent


@dataclass(frozen=True)
class SweepSettings:
    n_trials: int
    n_jobs: int
    sampler: Mapping[str, Any]
    pruner: Mapping[str, Any]
    storage: str | None
    study_name: str | None
    params: Mapping[str, Any]
    grid: Mapping[str, Any]
    max_failure_rate: float
    heartbeat_interval: float
    grace_period: float
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.n_trials, int) or self.n_trials <= 0:
            raise AblateError(
                f"hydra.sweeper.n_trials must be a positive integer, got {self.n_trials}"
            )
        if not isinstance(self.n_jobs, int) or self.n_jobs <= 0:
            raise AblateError(f"hydra.sweeper.n_jobs must be a positive integer, got {self.n_jobs}")
        if self.batch_size is not None and (
            not isinstance(self.batch_size, int) or self.batch_size <= 0
        ):
            raise AblateError(
                f"hydra.sweeper.batch_size must be a positive integer or null, "
                f"got {self.batch_size}"
            )
        if not 0 < self.max_failure_rate <= 1:
            raise AblateError("hydra.sweeper.max_failure_rate must be in (0, 1]")
        if self.heartbeat_interval <= 0 or self.grace_period <= self.heartbeat_interval:
            raise AblateError("hydra.sweeper: need 0 < heartbeat_interval < grace_period")


@dataclass
class StudySlot:
    """One Optuna study of the sweep and what it needs to launch its trials."""

    name: str
    overrides: list[str]  # the grid combination, e.g. ["cell=vanilla", "task=jsb"]
    direction: str
    study: optuna.Study
    study_id: int
    n_trials: int
    experiment_id: str
    created: bool = False  # this sweep created the study, so it makes the parent run
    parent: TrackedRun | None = None
    launched: list[int] = field(default_factory=list)
    cell: Mapping[str, Any] = field(default_factory=dict)  # the preset's spec

    def counted(self) -> list[FrozenTrial]:
        return counted(self.study.get_trials(deepcopy=False))

    def remaining(self) -> int:
        return self.n_trials - len(self.counted())


def study_name(config: DictConfig, overrides: Sequence[str], swept: set[str]) -> str:
    """Deterministic: the study, the preset, the task, then any other swept keys (so
    ``seed=0,1`` gives a study per seed). Settings fixed on the command line do not name the
    study: give searches with different fixed settings different ``study=`` names."""
    parts = [str(config.study), str(config.cell.name), str(config.task.name)]
    parts += [o for o in overrides if o.split("=", 1)[0] in swept - {"cell", "task"}]
    name = "/".join(parts)
    if re.search(r"['\"\\\\]", name):
        raise AblateError(f"study name {name!r} must not contain quotes or backslashes")
    return name


def _quote(value: str) -> str:
    return "'" + value + "'"


class Sweep:
    def __init__(
        self,
        settings: SweepSettings,
        config: DictConfig,
        hydra_context: Any,
        launcher: Any,
        check_job: Any,
    ) -> None:
        self.settings = settings
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = launcher
        self.check_job = check_job  # config dict -> None, raises on a bad job config
        self.space: list[Dimension] = parse_space(settings.params)
        self.batch_size = settings.batch_size or auto_batch_size(settings, launcher)
        # Trials asked from one study before the next: a stacking launcher trains a study's
        # trials of similar hidden sizes together, so a launch brings it several groups' worth
        # of one study at a time, to choose the groups from.
        group_size = getattr(launcher, "group_size", None)
        self.run_length = 1 if group_size is None else GROUPS_PER_WORKER * int(group_size)
        self.job_index = 0
        self.in_flight: dict[int, int] = {}  # trial id -> study id
        self._lock = threading.Lock()
        self._stop = threading.Event()

    # -- set-up: everything checked before anything is written --------------------------------

    def combinations(self, arguments: Sequence[str]) -> list[list[str]]:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        grid = [f"{key}={_grid_value(value)}" for key, value in self.settings.grid.items()]
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*grid, *arguments])
        searched = {d.key for d in self.space}
        searched |= {"components"} if any(d.component for d in self.space) else set()
        clash = sorted(searched & {o.get_key_element() for o in overrides})
        if clash:
            raise AblateError(f"{clash[0]} is both searched and set on the command line")
        self.swept = {o.get_key_element() for o in overrides if o.is_sweep_override()}
        (combos,) = BasicSweeper.split_arguments(overrides, None)
        return combos

    def _job_config(self, overrides: Sequence[str]) -> DictConfig:
        loader = self.hydra_context.config_loader
        return loader.load_sweep_config(self.config, list(overrides))

    def prepare(self, arguments: Sequence[str]) -> list[StudySlot]:
        planned = []
        for combo in self.combinations(arguments):
            job = self._job_config(combo)
            for dim in self.space:
                if dim.component:
                    continue
                if OmegaConf.select(job, dim.key, default="__missing__") == "__missing__":
                    raise AblateError(f"search space: {dim.key}: no such config key")
            sample = [dim.override(_low(dim)) for dim in self.space if not dim.component]
            checked = self._job_config([*combo, *sample])
            with open_dict(checked):
                checked.pop("hydra")  # its runtime fields exist only inside a job
            config = OmegaConf.to_container(checked, resolve=True)
            assert isinstance(config, dict)
            self.check_job(config)
            cls, _ = task_class(config["task"])
            name = self.settings.study_name or study_name(job, combo, self.swept)
            direction = "maximize" if cls.higher_is_better else "minimize"
            planned.append((combo, job, name, direction, config["cell"]))
        if len({p[2] for p in planned}) != len(planned):
            raise AblateError(
                "hydra.sweeper.study_name is fixed but the grid has several "
                "combinations; leave it null for one study per combination"
            )

        first = planned[0][1]
        self.storage_url = storage_url(self.settings.storage, first.tracking.root)
        self.storage: BaseStorage = open_storage(self.storage_url)
        self.uri = tracking_uri(first.tracking.uri, first.tracking.root)
        slots = []
        for combo, job, name, direction, cell in planned:
            experiment_id = ensure_experiment(
                self.uri, str(job.tracking.experiment), job.tracking.root
            )
            existing = _existing_trials(self.storage, name)
            created = _create_study(self.storage, name, direction)
            study = optuna.create_study(
                storage=self.storage,
                study_name=name,
                direction=direction,
                sampler=build_sampler(
                    self.settings.sampler,
                    self.space,
                    existing,
                    lambda values, cell=cell: components.valid(cell, values),
                ),
                pruner=build_pruner(self.settings.pruner),
                load_if_exists=True,
            )
            _pin_space(study, name, self.space)
            if study.direction.name.lower() != direction:
                raise AblateError(
                    f"optuna study {name!r} exists with direction "
                    f"{study.direction.name.lower()}, but the task needs {direction}"
                )
            n_trials = self.settings.n_trials
            if str(self.settings.sampler.get("name")) == "grid":
                n_trials = min(n_trials, _grid_size(self.space))
            slots.append(
                StudySlot(
                    name,
                    list(combo),
                    direction,
                    study,
                    self.storage.get_study_id_from_name(name),
                    n_trials,
                    experiment_id,
                    created,
                    cell=cell,
                )
            )
        return slots

    # -- the loop ----------------------------------------------------------------------------

    def run(self, arguments: Sequence[str]) -> list[dict[str, Any]]:
        slots = self.prepare(arguments)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        waiting_until = time.monotonic() + PARENT_WAIT
        for slot in slots:
            slot.parent = self._parent_run(slot, waiting_until)
        beat = threading.Thread(target=self._heartbeat, daemon=True)
        beat.start()
        status = "FAILED"
        try:
            self._loop(slots)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            self._stop.set()
            summaries = [self._summarise(slot, sweep_dir, status) for slot in slots]
            (sweep_dir / "optimization_results.yaml").write_text(
                yaml.safe_dump(summaries, sort_keys=False)
            )
        return summaries

    def _loop(self, slots: list[StudySlot]) -> None:
        with StudyBars({slot.name: slot.n_trials for slot in slots}) as bars:
            bars.update(self._progress(slots))
            while True:
                for slot in slots:
                    self._reap(slot)
                batch = self._ask_batch(slots)
                if not batch:
                    if any(self._running_elsewhere(slot) for slot in slots):
                        time.sleep(min(self.settings.heartbeat_interval, 5.0))
                        continue
                    return
                self._launch(batch)
                bars.update(self._progress(slots))
                self._check_failure_rate(slots)

    def _progress(self, slots: list[StudySlot]) -> dict[str, int]:
        """Log where the sweep stands, as `ablate status` says it, after each launch (workers
        elsewhere included: it reads the study); trials done per study, for the bars."""
        studies = [progress(self.storage, slot.name, slot.n_trials) for slot in slots]
        experiment = str(self.config.tracking.experiment)
        log.info(summary(experiment, studies, sum(slot.n_trials for slot in slots)))
        return {study.name: study.done for study in studies}

    def _ask_batch(self, slots: list[StudySlot]) -> list[tuple[StudySlot, Trial]]:
        """Up to batch_size trials, taken from the studies in turn (``run_length`` at a time)
        so a batch mixes them, the studies with the fewest trials first: when a batch holds
        fewer trials than there are studies, the next batch goes on with the others, and a
        sweep stopped part way leaves its studies about equally far."""
        batch: list[tuple[StudySlot, Trial]] = []
        wanting = sorted(
            (s for s in slots if s.remaining() > 0), key=lambda s: s.n_trials - s.remaining()
        )
        while wanting and len(batch) < self.batch_size:
            for slot in list(wanting):
                for _ in range(self.run_length):
                    trial = self._ask(slot) if len(batch) < self.batch_size else None
                    if trial is not None:
                        batch.append((slot, trial))
                    if trial is None or slot.remaining() <= 0:
                        wanting.remove(slot)
                        break
        return batch

    def _ask(self, slot: StudySlot) -> Trial | None:
        """A trial, unless the study is full. Under the store's lock, so that two sweeps never
        take its last place both; without one (a database server), a trial that finds the
        study full once asked goes back to the queue (WAITING, with its parameters), for a
        later sweep with a larger n_trials: nothing a user would take for a failure."""
        with self._store_lock():
            if slot.remaining() <= 0:
                return None
            trial = slot.study.ask({d.key: d.distribution for d in self.space})
            tid = trial._trial_id
            for key, value in (
                (HOST_ATTR, socket.gethostname()),
                (PID_ATTR, os.getpid()),
                (BEAT_ATTR, time.time()),
            ):
                self.storage.set_trial_system_attr(tid, key, value)
            ahead = [t for t in slot.counted() if t.number < trial.number]
            if len(ahead) >= slot.n_trials:  # another sweep took the last place meanwhile
                self.storage.set_trial_state_values(tid, TrialState.WAITING)
                return None
        with self._lock:
            self.in_flight[tid] = slot.study_id
        return trial

    @contextlib.contextmanager
    def _store_lock(self) -> Iterator[None]:
        """Across the processes of this host: a lock file beside a sqlite or journal store."""
        path = _lock_file(self.storage_url)
        if path is None:
            yield
            return
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _params(self, slot: StudySlot, params: Mapping[str, Any]) -> list[str]:
        """The job's overrides for a trial's parameters: the cell's components as one."""
        out = [dim.override(params[dim.key]) for dim in self.space if not dim.component]
        picked = {d.key: params[d.key] for d in self.space if d.component}
        if picked:
            spec = components.sampled_spec(slot.cell, picked)
            out.append(f"components={components.token(spec)}")
        return out

    def _overrides(self, slot: StudySlot, trial: Trial) -> list[str]:
        params = self._params(slot, trial.params)
        sweep = [
            f"sweep.storage={_quote(self.storage_url)}",
            f"sweep.study={_quote(slot.name)}",
            f"sweep.trial={trial.number}",
        ]
        if slot.parent is not None:
            sweep.append(f"sweep.parent_run_id={slot.parent.run_id}")
        return [*slot.overrides, *params, *sweep]

    def _launch(self, batch: list[tuple[StudySlot, Trial]]) -> None:
        jobs = [self._overrides(slot, trial) for slot, trial in batch]
        for slot, trial in batch:
            params = " ".join(self._params(slot, trial.params))
            log.info("%s: trial %d: %s", slot.name, trial.number, params)
        try:
            results = self.launcher.launch(jobs, initial_job_idx=self.job_index)
        except KeyboardInterrupt:
            for slot, trial in batch:
                self._give_back(slot, trial, "interrupted (KeyboardInterrupt or SIGTERM)")
            raise
        self.job_index += len(jobs)
        for (slot, trial), result in zip(batch, results, strict=True):
            self._tell(slot, trial, result)
            slot.launched.append(trial.number)

    def _tell(self, slot: StudySlot, trial: Trial, result: JobReturn) -> None:
        """Record a job that raised; a job that returned has ended its trial itself
        (TrialReporter.finish), as soon as it finished."""
        with self._lock:
            self.in_flight.pop(trial._trial_id, None)
        try:
            outcome = result.return_value
        except Exception as err:  # noqa: BLE001 - a job that raised: recorded, sweep goes on
            message = f"{type(err).__name__}: {err}".strip()[:2000]
            self.storage.set_trial_system_attr(trial._trial_id, ERROR_ATTR, message)
            slot.study.tell(trial, state=TrialState.FAIL)
            log.error("%s: trial %d failed: %s", slot.name, trial.number, message)
            return
        if not isinstance(outcome, JobOutcome):
            raise AblateError(f"the job returned {outcome!r}, not a JobOutcome")

    def _give_back(self, slot: StudySlot, trial: Trial | FrozenTrial, reason: str) -> None:
        """End a trial that did not finish, and queue its parameters to run again."""
        tid = trial._trial_id
        with self._lock:
            self.in_flight.pop(tid, None)
        with self._store_lock():  # one sweep gives a trial back, once
            frozen = self.storage.get_trial(tid)
            if frozen.state is not TrialState.RUNNING:
                return
            try:
                self.storage.set_trial_system_attr(tid, GIVEN_BACK_ATTR, reason)
                self.storage.set_trial_state_values(tid, TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                return  # its job ended it meanwhile: it counts, once
            slot.study.enqueue_trial(frozen.params, user_attrs={RETRY_ATTR: frozen.number})
        run_id = frozen.system_attrs.get(MLFLOW_RUN_ATTR)
        if run_id:
            run = TrackedRun(self.uri, str(run_id))
            if run.exists() and run.status() == "RUNNING":
                run.set_tags({"failure_reason": reason})
                run.end("KILLED")
        log.warning(
            "%s: trial %d given back (%s); its parameters are queued again",
            slot.name,
            frozen.number,
            reason,
        )

    # -- workers that died -------------------------------------------------------------------

    def _is_stale(self, trial: FrozenTrial) -> bool:
        attrs = trial.system_attrs
        with self._lock:
            if trial._trial_id in self.in_flight:
                return False
        pid = attrs.get(PID_ATTR)
        if attrs.get(HOST_ATTR) == socket.gethostname() and isinstance(pid, int):
            return not process_alive(pid) or pid == os.getpid()
        started = trial.datetime_start.timestamp() if trial.datetime_start else time.time()
        beat = float(attrs.get(BEAT_ATTR, started))
        return time.time() - beat > self.settings.grace_period

    def _reap(self, slot: StudySlot) -> None:
        for trial in slot.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if self._is_stale(trial):
                self._give_back(slot, trial, "its worker died")

    def _running_elsewhere(self, slot: StudySlot) -> bool:
        return any(
            True for _ in slot.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        )

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_interval):
            with self._lock:
                trial_ids = list(self.in_flight)
            for tid in trial_ids:
                try:
                    self.storage.set_trial_system_attr(tid, BEAT_ATTR, time.time())
                except Exception as err:  # noqa: BLE001 - finished meanwhile, or busy storage
                    log.debug("heartbeat of trial %d skipped: %s", tid, err)

    # -- failures, parents, results ----------------------------------------------------------

    def _check_failure_rate(self, slots: list[StudySlot]) -> None:
        mine = [
            t for s in slots for t in s.study.get_trials(deepcopy=False) if t.number in s.launched
        ]
        failed = [t for t in mine if ERROR_ATTR in t.system_attrs]
        if len(mine) >= 4 and len(failed) / len(mine) > self.settings.max_failure_rate:
            last = failed[-1].system_attrs[ERROR_ATTR]
            raise AblateError(
                f"sweep stopped: {len(failed)} of {len(mine)} trials failed, more than "
                f"hydra.sweeper.max_failure_rate={self.settings.max_failure_rate}; "
                f"last error: {last}"
            )

    def _parent_run(self, slot: StudySlot, waiting_until: float) -> TrackedRun:
        """The study's one parent run, whatever the number of sweeps working on it: made by
        the sweep that created the study, and recorded in it; found again on a resume."""
        mlflow = client(self.uri)
        while True:
            attrs = self.storage.get_study_system_attrs(slot.study_id)
            run_id = attrs.get(PARENT_ATTR)
            if run_id:
                try:
                    alive = mlflow.get_run(str(run_id)).info.lifecycle_stage == "active"
                except Exception:  # noqa: BLE001 - another store's run, or purged
                    alive = False
                if alive:
                    run = TrackedRun(self.uri, str(run_id))
                    run.reopen()
                    return run
                break  # the user deleted it: a new one
            if (
                slot.created
                or sweep_gone(attrs)  # the sweep that created the study died
                # Trials without a parent recorded: an earlier version of ablate asked them.
                or self.storage.get_all_trials(slot.study_id, deepcopy=False)
                or time.monotonic() > waiting_until
            ):
                break
            time.sleep(0.2)  # the sweep that created the study is making it (then trials)
        found = mlflow.search_runs(  # the parent of an earlier version of ablate
            [slot.experiment_id],
            filter_string=(f"tags.`ablate.kind` = 'study' and tags.`optuna.study` = '{slot.name}'"),
            max_results=1,
        )
        if found:
            run = TrackedRun(self.uri, found[0].info.run_id)
            run.reopen()
        else:
            run = TrackedRun.create(
                self.uri,
                slot.experiment_id,
                name=f"study {slot.name}",
                tags={
                    "ablate.kind": "study",
                    "optuna.study": slot.name,
                    "optuna.storage": redact(self.storage_url),
                    "study": str(self.config.study),
                    "direction": slot.direction,
                    "hydra.sweep_dir": str(self.config.hydra.sweep.dir),
                },
            )
        self.storage.set_study_system_attr(slot.study_id, PARENT_ATTR, run.run_id)
        return run

    def _summarise(self, slot: StudySlot, sweep_dir: Path, status: str) -> dict[str, Any]:
        trials = slot.study.get_trials(deepcopy=False)
        states = {
            s.name.lower(): 0 for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        }
        for t in trials:
            if t.state.name.lower() in states and SURPLUS_ATTR not in t.system_attrs:
                states[t.state.name.lower()] += 1
        summary: dict[str, Any] = {
            "study": slot.name,
            "direction": slot.direction,
            "n_trials": slot.n_trials,
            **states,
        }
        complete = [t for t in trials if t.state is TrialState.COMPLETE]
        if complete:
            best = slot.study.best_trial
            params = {d.key: d.value(best.params[d.key]) for d in self.space}
            summary.update(best_value=best.value, best_trial=best.number, best_params=params)
        folder = sweep_dir / "studies" / re.sub(r"[^A-Za-z0-9_.=-]+", "_", slot.name)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "best.yaml").write_text(yaml.safe_dump(summary, sort_keys=False))
        if slot.parent is not None:
            metrics = {f"n_{k}": float(v) for k, v in states.items()}
            if complete:
                metrics["best_value"] = float(summary["best_value"])
                slot.parent.set_tags(
                    {
                        "best_trial": summary["best_trial"],
                        "best_params": json.dumps(summary["best_params"]),
                    }
                )
            slot.parent.log_metrics(metrics)
            slot.parent.end(status)
        log.info("%s: %s", slot.name, {k: v for k, v in summary.items() if k != "study"})
        return summary


SPACE_ATTR = "ablate:search_space"


# Samplers whose draws do not depend on earlier results: their trials can be asked long
# before the trials ahead of them end.
BLIND_SAMPLERS = ("random", "grid")
# Launchers that run a batch on a fixed pool of workers (hydra.launcher.n_jobs of them), so a
# longer batch queues rather than runs more at once.
POOLED_LAUNCHERS = ("JoblibLauncher",)
BATCHES_PER_POOL = 16
GROUPS_PER_WORKER = 4


def auto_batch_size(settings: SweepSettings, launcher: Any) -> int:
    """Trials per launch: n_jobs, or, for a blind sampler on a pooled launcher, 16 x n_jobs;
    on a stacking launcher (``hydra/launcher=batched``), 4 groups per worker.

    A launch returns when its last trial ends, so with n_jobs trials per launch every worker
    waits for the slowest trial of each batch; on a pool, a longer batch lets a worker start
    the next trial as soon as it is free, and leaves it idle only at the batch's end (~3% of
    16 trials). Optuna hears of the results, and max_failure_rate is checked, per batch.
    A model-based sampler (TPE) asks n_jobs at a time, and so stacks n_jobs trials at most.
    """
    blind = str(settings.sampler.get("name", "random")) in BLIND_SAMPLERS
    group_size = getattr(launcher, "group_size", None)
    if blind and group_size is not None:
        return GROUPS_PER_WORKER * int(group_size) * int(getattr(launcher, "n_jobs", 1))
    if blind and type(launcher).__name__ in POOLED_LAUNCHERS:
        return BATCHES_PER_POOL * settings.n_jobs
    return settings.n_jobs


def _pin_space(study: optuna.Study, name: str, space: Sequence[Dimension]) -> None:
    """A study's trials must come from one search space, or its analysis means nothing."""
    declared = json.dumps(
        {
            d.key: [optuna.distributions.distribution_to_json(d.distribution), d.transform]
            for d in space
        },
        sort_keys=True,
    )
    pinned = study.user_attrs.get(SPACE_ATTR)
    if pinned is None:
        study.set_user_attr(SPACE_ATTR, declared)
        return
    if pinned == declared:
        return

    def describe(entry: Any) -> str:
        """``[low, high] (log, step s)``, ``choices [...]``, then the transform."""
        try:
            dist, transform = entry
            data = json.loads(dist)
            attrs = data["attributes"]
            if "choices" in attrs:
                text = f"choices {json.dumps(attrs['choices'])}"
            else:
                text = f"[{attrs['low']}, {attrs['high']}]"
                extras = (["log"] if attrs.get("log") else []) + (
                    [f"step {attrs['step']}"] if attrs.get("step") is not None else []
                )
                text += f" ({', '.join(extras)})" if extras else ""
            return text + (f" transform {transform}" if transform != "identity" else "")
        except (TypeError, ValueError, KeyError):
            return json.dumps(entry)

    try:
        old = json.loads(pinned)
    except (TypeError, ValueError):
        old = None
    old = old if isinstance(old, dict) else {}  # unreadable: every parameter shows as added
    new = json.loads(declared)
    if old == new:
        return  # the same space, written differently
    changes = [
        f"{key}: {describe(old[key])} -> {describe(new[key])}"
        for key in sorted(set(old) & set(new))
        if old[key] != new[key]
    ]
    changes += [f"{key} added: {describe(new[key])}" for key in sorted(set(new) - set(old))]
    changes += [f"{key} removed (was {describe(old[key])})" for key in sorted(set(old) - set(new))]
    raise AblateError(
        f"the search space of study {name!r} changed since its first trials "
        f"({'; '.join(changes)}); give the new search another "
        "study= name (or hydra.sweeper.study_name)"
    )


def _grid_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _low(dim: Dimension) -> Any:
    d = dim.distribution
    return d.choices[0] if isinstance(d, optuna.distributions.CategoricalDistribution) else d.low


def _grid_size(space: Sequence[Dimension]) -> int:
    size = 1
    for dim in space:
        size *= len(dim.grid_values())
    return size


def _create_study(storage: BaseStorage, name: str, direction: str) -> bool:
    """Create the study if it does not exist; whether this process did (the claim that makes
    it the one to create the study's MLflow parent run). Its host and pid are recorded, so
    that other sweeps do not wait for a parent run from a sweep that died."""
    directions = [optuna.study.StudyDirection[direction.upper()]]
    try:
        study_id = storage.create_new_study(directions, name)
    except optuna.exceptions.DuplicatedStudyError:
        return False
    storage.set_study_system_attr(study_id, HOST_ATTR, socket.gethostname())
    storage.set_study_system_attr(study_id, PID_ATTR, os.getpid())
    return True


def _lock_file(url: str) -> Path | None:
    """Where the sweeps of one host lock a store: beside a sqlite file (the lock ablate
    takes to create it) or a journal file; None for a database server."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        path = Path(url.removeprefix("sqlite:///").split("?", 1)[0])
        return path.with_name(path.name + ".lock")
    if url.startswith(JOURNAL):
        path = Path(url.removeprefix(JOURNAL))
        return path.with_name(path.name + ".ablate-lock")  # .lock is Optuna's own
    return None


def _existing_trials(storage: BaseStorage, name: str) -> int:
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))
