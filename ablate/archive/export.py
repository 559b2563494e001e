"""Read one experiment out of the stores into an :class:`Archive`: its MLflow runs (parents
included, with every metric's history) and the Optuna studies its sweeps ran."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import optuna
from optuna.distributions import distribution_to_json
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

from ablate.archive.records import Archive, Record
from ablate.errors import AblateError
from ablate.progress import bar
from ablate.report.store import Source, optuna_url
from ablate.search.storage import open_storage

PARENT_TAG = "mlflow.parentRunId"
_PAGE = 10_000


def _runs(source: Source) -> Iterator[Any]:
    token = None
    while True:
        page = source.client.search_runs(
            list(source.experiments), max_results=_PAGE, page_token=token
        )
        yield from page
        token = page.token
        if not token:
            return


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else round(moment.timestamp() * 1000)


def _run_record(source: Source, run: Any, known: set[str]) -> Record:
    tags = dict(run.data.tags)
    parent = tags.get(PARENT_TAG)
    curves = {}
    for key in sorted(run.data.metrics):
        history = sorted(
            source.client.get_metric_history(run.info.run_id, key),
            key=lambda m: (m.step, m.timestamp),
        )
        curves[key] = ([int(m.step) for m in history], [float(m.value) for m in history])
    return Record(
        kind="run",
        name=str(run.info.run_name or ""),
        run_id=run.info.run_id,
        parent_run_id=parent if parent in known else None,
        status=str(run.info.status),
        start_time=run.info.start_time,
        end_time=run.info.end_time,
        tags=tags,
        params=dict(run.data.params),
        values={k: float(v) for k, v in run.data.metrics.items()},
        curves=curves,
    )


def _trial_record(study: str, trial: FrozenTrial) -> Record:
    return Record(
        kind="trial",
        name=study,
        number=trial.number,
        status=trial.state.name,
        start_time=_ms(trial.datetime_start),
        end_time=_ms(trial.datetime_complete),
        tags=dict(trial.user_attrs),
        params={k: trial.distributions[k].to_internal_repr(v) for k, v in trial.params.items()},
        attrs={
            "system": dict(trial.system_attrs),
            "distributions": {k: distribution_to_json(d) for k, d in trial.distributions.items()},
        },
        values={
            "values": trial.values,
            "intermediate": {str(k): v for k, v in trial.intermediate_values.items()},
        },
    )


def _studies(storage: BaseStorage, names: list[str]) -> tuple[list[Record], list[Record]]:
    studies, trials = [], []
    for name in names:
        try:
            study_id = storage.get_study_id_from_name(name)
        except KeyError:
            raise AblateError(
                f"optuna study {name!r} (named by a sweep's parent run) is not in the storage; "
                "give the right one with --optuna-storage"
            ) from None
        directions = [d.name.lower() for d in storage.get_study_directions(study_id)]
        studies.append(
            Record(
                kind="study",
                name=name,
                status=",".join(directions),
                tags=dict(storage.get_study_user_attrs(study_id)),
                attrs=dict(storage.get_study_system_attrs(study_id)),
            )
        )
        found = storage.get_all_trials(study_id, deepcopy=False)
        trials += [_trial_record(name, t) for t in sorted(found, key=lambda t: t.number)]
    return studies, trials


def collect(source: Source) -> Archive:
    """Everything of ``source``'s (single) experiment. Works while a sweep runs: what is
    running then is archived as running, and a sweep resumed from the archive re-runs it."""
    if len(source.experiments) != 1:
        raise AblateError("an archive holds one experiment: name it with experiment=NAME")
    ((experiment_id, name),) = source.experiments.items()
    experiment = source.client.get_experiment(experiment_id)
    runs = list(_runs(source))
    known = {r.info.run_id for r in runs}
    records = [_run_record(source, run, known) for run in bar(runs, "export runs")]
    parents = [r for r in records if r.tags.get("ablate.kind") == "study"]
    names = sorted({str(r.tags["optuna.study"]) for r in parents if r.tags.get("optuna.study")})
    studies: list[Record] = []
    trials: list[Record] = []
    if names:
        url = optuna_url(source, [str(r.tags.get("optuna.storage", "")) for r in parents])
        if url is None:
            raise AblateError(
                f"the sweeps of {name!r} used Optuna studies, but no Optuna storage was found: "
                "give it with --optuna-storage"
            )
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        studies, trials = _studies(open_storage(url), names)
    head = Record(kind="experiment", name=name, tags=dict(experiment.tags))
    return Archive(
        head, studies, trials, sorted(records, key=lambda r: r.parent_run_id is not None)
    )
