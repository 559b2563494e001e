"""Which store and which runs a report reads: the MLflow URI, the experiments, the Optuna storage.

Opening never creates anything: a report of a store that is not there is a user error, not an
empty sqlite file left behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ablate.errors import AblateError
from ablate.paths import experiments_dir
from ablate.search.storage import DEFAULT_FILE
from ablate.tracking import DEFAULT_STORE, client, redact, tracking_uri


@dataclass(frozen=True)
class Source:
    """Where a report's numbers come from."""

    uri: str
    experiments: dict[str, str]  # MLflow experiment id -> name, ordered by name
    run_filter: str | None
    root: Path  # where a default Optuna storage is looked for
    optuna_storage: str | None  # as given; None: found from the store (see optuna_url)
    client: Any


def mlflow_experiment_name(name: str) -> str:
    """``experiment=NAME`` means the MLflow experiment that experiments/NAME.yaml's ``study``
    names (the same name for every shipped experiment); any other name is taken as is."""
    path = experiments_dir() / f"{name}.yaml"
    if path.is_file():
        config = yaml.safe_load(path.read_text()) or {}
        if isinstance(config, dict) and config.get("study"):
            return str(config["study"])
    return name


def open_source(
    experiment: str | None,
    run_filter: str | None,
    root: str | Path | None,
    uri: str | None,
    optuna_storage: str | None,
) -> Source:
    base = Path(root).resolve() if root else Path.cwd().resolve()
    # An explicit --root wins over $MLFLOW_TRACKING_URI; --uri over both.
    resolved = uri or (f"sqlite:///{base / DEFAULT_STORE}" if root else tracking_uri(None, base))
    if resolved == f"sqlite:///{base / DEFAULT_STORE}" and not (base / DEFAULT_STORE).is_file():
        raise AblateError(
            f"no MLflow store at {base / DEFAULT_STORE}: run a sweep there first, or give "
            "--root DIR or --uri URI"
        )
    mlflow_client = client(resolved)
    try:
        found = mlflow_client.search_experiments(max_results=50_000)
    except Exception as err:  # noqa: BLE001 - any store failure, in one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AblateError(f"tracking store {resolved} is unreachable: {first}") from None
    by_name = {e.name: str(e.experiment_id) for e in found}
    if experiment is not None:
        name = mlflow_experiment_name(experiment)
        if name not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            raise AblateError(
                f"no MLflow experiment {name!r} in {resolved} (experiments there: {known})"
            )
        chosen = {by_name[name]: name}
    elif run_filter:
        chosen = {i: n for n, i in sorted(by_name.items())}
    else:
        raise AblateError("name the runs to report: experiment=NAME, or --filter 'MLflow filter'")
    return Source(resolved, chosen, run_filter, base, optuna_storage, mlflow_client)


def describe(url: str) -> str:
    """A store as a reader can use it: a sqlite file by its name in the folder the command ran
    in (no machine paths in committed reports), a server by its address, without password."""
    if url.startswith("sqlite:///"):
        return f"`{Path(url.removeprefix('sqlite:///')).name}` in the working folder"
    return f"`{redact(url)}`"


def optuna_url(source: Source, tagged: list[str]) -> str | None:
    """The Optuna storage: as given, else ``optuna.db`` beside the store (a store moved with its
    storage), else the one the sweeps' parent runs name, else none (no importances)."""
    if source.optuna_storage:
        return source.optuna_storage
    beside = source.root / DEFAULT_FILE
    if beside.is_file():
        return f"sqlite:///{beside}"
    for url in sorted(set(tagged)):
        if "***" in url:  # a redacted password
            continue
        if not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).is_file():
            return url
    return None
