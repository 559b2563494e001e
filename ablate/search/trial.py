"""The job's side of a search: report each epoch to its Optuna trial, which may prune it."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from ablate.search.samplers import build_pruner
from ablate.search.storage import open_storage

log = logging.getLogger("ablate")

MLFLOW_RUN_ATTR = "ablate:mlflow_run_id"
ERROR_ATTR = "ablate:error"  # why a trial failed, or "diverged"
# Set by the sweep that asked the trial: where it runs, and a heartbeat for other hosts.
HOST_ATTR, PID_ATTR, BEAT_ATTR = "ablate:host", "ablate:pid", "ablate:heartbeat"
SURPLUS_ATTR = "ablate:surplus"  # trials asked of a full study by earlier versions: not shown


def counts(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial fills one of a study's n_trials: finished (a job that raised or
    diverged included, so it is not retried forever) or running. Trials given back by a dead
    or interrupted worker do not: their parameters run again."""
    state = trial.state
    if state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
        return True
    return state is TrialState.FAIL and ERROR_ATTR in trial.system_attrs


def counted(trials: Iterable[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The trials that fill a study's places, in number order: those that count, less any that
    shares its MLflow run with an earlier one. Such a trial repeated an earlier setting (random
    draws with replacement, before the sampler stopped repeating them): the same job, which
    ran once and returned its result to both."""
    seen: set[str] = set()
    out = []
    for trial in sorted(trials, key=lambda t: t.number):
        run = trial.system_attrs.get(MLFLOW_RUN_ATTR)
        if not counts(trial) or run in seen:
            continue
        if run is not None:
            seen.add(str(run))
        out.append(trial)
    return out


class Pruned(Exception):
    """The trial's pruner stopped this job."""


@dataclass(frozen=True)
class JobOutcome:
    """What a job returns to the sweeper: the objective and how the job ended."""

    value: float
    state: str  # "complete", "pruned" or "diverged"
    direction: str  # "minimize" or "maximize": the task's metric


class TrialReporter:
    def __init__(
        self, storage_url: str, study_name: str, number: int, pruner: Mapping[str, Any] | None
    ) -> None:
        self.storage = open_storage(storage_url)
        self.study = optuna.load_study(
            study_name=study_name, storage=self.storage, pruner=build_pruner(pruner)
        )
        study_id = self.storage.get_study_id_from_name(study_name)
        self.trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, number)
        self.trial = optuna.trial.Trial(self.study, self.trial_id)
        self.number = number

    def attach_run(self, run_id: str) -> None:
        """Lets the sweeper close this job's MLflow run if the job's process dies."""
        self.storage.set_trial_system_attr(self.trial_id, MLFLOW_RUN_ATTR, run_id)

    def finish(self, outcome: JobOutcome) -> bool:
        """End the trial with the job's outcome, as soon as the job ends rather than when the
        sweeper's batch returns: its value; pruned (Optuna keeps the last reported value); or
        diverged, flagged, with the task's worst value so that it ranks last.

        Not when the sweep that asked the trial is gone: the next sweep gives such a trial
        back and runs its parameters again (from this job's checkpoint, so at no cost), and
        the trial must not count twice. Nor when it was given back already. Returns whether
        the trial was ended here."""
        frozen = self.storage.get_trial(self.trial_id)
        if frozen.state.is_finished() or sweep_gone(frozen.system_attrs):
            log.warning(
                "trial %d: not recorded: %s",
                self.number,
                "it was given back" if frozen.state.is_finished() else "its sweep is gone",
            )
            return False
        try:
            if outcome.state == "pruned":
                self.study.tell(
                    self.trial, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True
                )
                return True
            if outcome.state == "diverged":
                self.storage.set_trial_system_attr(self.trial_id, ERROR_ATTR, "diverged")
            self.study.tell(self.trial, outcome.value, skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:  # given back meanwhile
            log.warning("trial %d: not recorded: it was given back", self.number)
            return False
        return True

    def report(self, value: float, epoch: int) -> None:
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            raise Pruned(f"pruned by the study's pruner after epoch {epoch}")


def sweep_gone(attrs: Mapping[str, Any]) -> bool:
    """Whether the sweep that asked a trial (its system attrs) is known to be gone: it ran on
    this host and its process has ended. (On another host, its heartbeat tells.)"""
    pid = attrs.get(PID_ATTR)
    if attrs.get(HOST_ATTR) != socket.gethostname() or not isinstance(pid, int):
        return False
    return not process_alive(pid)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
