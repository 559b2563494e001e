"""Recreate an archived experiment in the current stores: its MLflow runs (parents first,
then their jobs, with new run ids) and its Optuna studies, trial by trial in number order, so
that a resumed sweep continues where the archived one stopped and draws what it would have.

Only empty places are written: an experiment that already has runs, or a study that already
exists, is refused before anything is written; a store failure half-way removes what the
import made.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import optuna
from optuna.distributions import json_to_distribution
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ablate.archive.export import PARENT_TAG
from ablate.archive.records import Archive, Record
from ablate.errors import AblateError
from ablate.progress import bar
from ablate.search.trial import MLFLOW_RUN_ATTR
from ablate.tracking import client, ensure_experiment, redact, retry

# MLflow's limits per log_batch call.
MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _refuse_occupied(archive: Archive, uri: str, storage: BaseStorage) -> None:
    mlflow_client = client(uri)
    try:
        experiment = mlflow_client.get_experiment_by_name(archive.experiment.name)
    except Exception as err:  # noqa: BLE001 - an unreachable or broken store, one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AblateError(f"tracking store {uri}: {first}") from None
    if experiment is not None and mlflow_client.search_runs(
        [experiment.experiment_id], max_results=1
    ):
        raise AblateError(
            f"MLflow experiment {archive.experiment.name!r} at {uri} already has runs; import "
            "into empty stores (another --root)"
        )
    for study in archive.studies:
        try:
            storage.get_study_id_from_name(study.name)
        except KeyError:
            continue
        raise AblateError(
            f"optuna study {study.name!r} already exists in the storage; import into empty "
            "stores (another --root)"
        )


def _log_run(mlflow_client: Any, experiment_id: str, run: Record, tags: Mapping[str, str]) -> str:
    from mlflow.entities import Metric, Param

    created = retry(
        lambda: mlflow_client.create_run(
            experiment_id, start_time=run.start_time, tags=dict(tags), run_name=run.name
        )
    )
    run_id = created.info.run_id
    params = [Param(k, str(v)) for k, v in run.params.items()]
    stamp = run.end_time or run.start_time or 0
    metrics = []
    for key, (steps, values) in run.curves.items():
        last = max(steps) if steps else None
        for step, value in zip(steps, values, strict=True):
            exact = run.values[key] if step == last and key in run.values else value
            metrics.append(Metric(key, exact, stamp, step))
    for chunk in _chunks(params, MAX_PARAMS):
        retry(lambda chunk=chunk: mlflow_client.log_batch(run_id, params=chunk))
    for chunk in _chunks(metrics, MAX_METRICS):
        retry(lambda chunk=chunk: mlflow_client.log_batch(run_id, metrics=chunk))
    if run.status != "RUNNING":
        retry(
            lambda: mlflow_client.set_terminated(run_id, status=run.status, end_time=run.end_time)
        )
    return run_id


def _moment(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000)


def _frozen(trial: Record, run_ids: Mapping[str, str]) -> FrozenTrial:
    distributions = {
        k: json_to_distribution(v) for k, v in trial.attrs.get("distributions", {}).items()
    }
    system = dict(trial.attrs.get("system", {}))
    if system.get(MLFLOW_RUN_ATTR) in run_ids:
        system[MLFLOW_RUN_ATTR] = run_ids[system[MLFLOW_RUN_ATTR]]
    values = trial.values.get("values")
    return FrozenTrial(
        number=trial.number,
        state=TrialState[str(trial.status)],
        value=None,
        values=values,
        datetime_start=_moment(trial.start_time),
        datetime_complete=_moment(trial.end_time),
        params={k: distributions[k].to_external_repr(v) for k, v in trial.params.items()},
        distributions=distributions,
        user_attrs=dict(trial.tags),
        system_attrs=system,
        intermediate_values={int(k): v for k, v in trial.values.get("intermediate", {}).items()},
        trial_id=-1,
    )


def restore(archive: Archive, uri: str, storage_url: str, root: Any) -> dict[str, int]:
    """Write ``archive`` into the MLflow store at ``uri`` and the Optuna storage at
    ``storage_url``; returns what was made."""
    from ablate.search.storage import open_storage

    storage = open_storage(storage_url)
    _refuse_occupied(archive, uri, storage)
    experiment_id = ensure_experiment(uri, archive.experiment.name, root)
    mlflow_client = client(uri)
    made_runs: list[str] = []
    made_studies: list[str] = []
    try:
        for key, value in archive.experiment.tags.items():
            if not key.startswith("mlflow."):
                mlflow_client.set_experiment_tag(experiment_id, key, value)
        run_ids: dict[str, str] = {}
        for run in bar(archive.runs, "import runs"):
            tags = {k: str(v) for k, v in run.tags.items()}
            if run.parent_run_id:
                tags[PARENT_TAG] = run_ids[run.parent_run_id]
            if "optuna.storage" in tags:
                tags["optuna.storage"] = redact(storage_url)
            new_id = _log_run(mlflow_client, experiment_id, run, tags)
            made_runs.append(new_id)
            if run.run_id:
                run_ids[run.run_id] = new_id
        for study in archive.studies:
            directions = [StudyDirection[d.upper()] for d in str(study.status).split(",")]
            study_id = storage.create_new_study(directions, study.name)
            made_studies.append(study.name)
            for key, value in study.tags.items():
                storage.set_study_user_attr(study_id, key, value)
            for key, value in study.attrs.items():
                storage.set_study_system_attr(study_id, key, value)
            for trial in (t for t in archive.trials if t.name == study.name):
                storage.create_new_trial(study_id, template_trial=_frozen(trial, run_ids))
    except BaseException:
        # Best effort: the store may be what failed.
        for run_id in made_runs:
            with contextlib.suppress(Exception):
                mlflow_client.delete_run(run_id)
        for name in made_studies:
            with contextlib.suppress(Exception):
                optuna.delete_study(study_name=name, storage=storage)
        raise
    return {"runs": len(made_runs), "studies": len(made_studies), "trials": len(archive.trials)}
