"""The job's side of a search: report each epoch to its Optuna trial, which may prune it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna

from ablate.search.samplers import build_pruner
from ablate.search.storage import open_storage

MLFLOW_RUN_ATTR = "ablate:mlflow_run_id"
ERROR_ATTR = "ablate:error"  # why a trial failed, or "diverged"


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

    def finish(self, outcome: JobOutcome) -> None:
        """End the trial with the job's outcome, as soon as the job ends rather than when the
        sweeper's batch returns: its value; pruned (Optuna keeps the last reported value); or
        diverged, flagged, with the task's worst value so that it ranks last."""
        if outcome.state == "pruned":
            self.study.tell(self.trial, state=optuna.trial.TrialState.PRUNED)
            return
        if outcome.state == "diverged":
            self.storage.set_trial_system_attr(self.trial_id, ERROR_ATTR, "diverged")
        self.study.tell(self.trial, outcome.value)

    def report(self, value: float, epoch: int) -> None:
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            raise Pruned(f"pruned by the study's pruner after epoch {epoch}")
