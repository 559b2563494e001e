"""MLflow: where the store is, one experiment per study, one run per job under a sweep's parent.

Only :class:`mlflow.MlflowClient` is used (no fluent "active run"), so the Hydra callback in
the launching process and the jobs, in whatever processes a launcher puts them, never share
hidden state: the parent run's id reaches jobs through an environment variable.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ablate.errors import AblateError

log = logging.getLogger("ablate")

PARENT_RUN_ENV = "ABLATE_MLFLOW_PARENT_RUN_ID"
# MLflow 3's UI opens an experiment in its model-training view (runs, params, metrics) rather
# than its GenAI view (traces, sessions, judges) when the experiment carries this tag.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
DEFAULT_STORE = "mlflow.db"
ARTIFACTS = "mlartifacts"

# Studies run offline and on clusters: no usage telemetry, and a bad server fails fast.
for _key, _value in (
    ("MLFLOW_DISABLE_TELEMETRY", "true"),
    ("DO_NOT_TRACK", "true"),
    ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"),
    ("MLFLOW_HTTP_REQUEST_TIMEOUT", "20"),
):
    os.environ.setdefault(_key, _value)


def working_root(root: str | Path | None) -> Path:
    """The folder holding the default store: as configured, else where the command started."""
    if root:
        return Path(root).resolve()
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.cwd).resolve()
    return Path.cwd().resolve()


def tracking_uri(uri: str | None, root: str | Path | None) -> str:
    """The configured URI, else $MLFLOW_TRACKING_URI, else a sqlite store at ``root``.

    An absolute path, because Hydra jobs may run elsewhere and would each make a store.
    """
    if uri:
        return str(uri)
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{working_root(root) / DEFAULT_STORE}"


def client(uri: str) -> Any:
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)


def ensure_experiment(uri: str, name: str, root: str | Path | None) -> str:
    """Create the store and the experiment once, before jobs race to (mlflow migrations do)."""
    _check_reachable(uri)

    def create() -> str:
        mlflow_client = client(uri)
        experiment = mlflow_client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                mlflow_client.restore_experiment(experiment.experiment_id)
            if experiment.tags.get(EXPERIMENT_KIND[0]) is None:
                mlflow_client.set_experiment_tag(experiment.experiment_id, *EXPERIMENT_KIND)
            return str(experiment.experiment_id)
        location = None
        if uri.startswith("sqlite:"):
            location = (working_root(root) / ARTIFACTS).as_uri()
        return str(
            mlflow_client.create_experiment(
                name, artifact_location=location, tags=dict([EXPERIMENT_KIND])
            )
        )

    try:
        with sqlite_creation_lock(uri):
            return str(retry(create))
    except Exception as err:  # noqa: BLE001 - reported in one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AblateError(
            f"tracking store {uri}: cannot open experiment {name!r}: {first}"
        ) from None


def _check_reachable(uri: str) -> None:
    """Fail before training, in one line, when a tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=10)
    except requests.RequestException as err:
        raise AblateError(
            f"tracking server {uri} is unreachable ({type(err).__name__}); start it or set "
            "tracking.uri"
        ) from None


_TRANSIENT = ("locked", "already exists", "unique constraint")


@contextlib.contextmanager
def sqlite_creation_lock(url: str) -> Iterator[None]:
    """Serialise first use of a sqlite file across processes: schema creation and migrations
    of MLflow and Optuna are not safe to run twice at once."""
    if not url.startswith("sqlite:///"):
        yield
        return
    path = Path(url.removeprefix("sqlite:///").split("?", 1)[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def retry(fn: Any, attempts: int = 8, delay: float = 0.2) -> Any:
    """Parallel workers on one sqlite file see brief 'database is locked' errors, and race to
    create the schema ('table ... already exists'): wait and try again."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as err:  # noqa: BLE001
            if not any(t in str(err).lower() for t in _TRANSIENT) or attempt == attempts - 1:
                raise
            time.sleep(delay * 2**attempt)
    return None


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> flat ``a.b.c`` keys, so MLflow's param table stays one level."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def git_commit() -> str:
    """The commit of the ablate checkout that runs, or 'unknown' for an installed copy."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


class TrackedRun:
    """One MLflow run, written through the client with retries."""

    def __init__(self, uri: str, run_id: str) -> None:
        self.uri = uri
        self.run_id = run_id
        self._client = client(uri)

    @classmethod
    def create(
        cls,
        uri: str,
        experiment_id: str,
        name: str,
        tags: Mapping[str, str],
        parent_run_id: str | None = None,
    ) -> TrackedRun:
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        all_tags = dict(tags)
        if parent_run_id:
            all_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
        mlflow_client = client(uri)
        run = retry(lambda: mlflow_client.create_run(experiment_id, run_name=name, tags=all_tags))
        return cls(uri, run.info.run_id)

    def exists(self) -> bool:
        try:
            self._client.get_run(self.run_id)
        except Exception:  # noqa: BLE001 - a run of another store, or deleted
            return False
        return True

    def status(self) -> str:
        return str(self._client.get_run(self.run_id).info.status)

    def reopen(self) -> None:
        retry(lambda: self._client.update_run(self.run_id, status="RUNNING"))

    def metric_steps(self, key: str) -> set[int]:
        return {m.step for m in self._client.get_metric_history(self.run_id, key)}

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self._client.get_run(self.run_id).data.params
        items = [Param(k, _param_str(v)) for k, v in params.items() if k not in existing]
        for start in range(0, len(items), 90):
            chunk = items[start : start + 90]
            retry(lambda chunk=chunk: self._client.log_batch(self.run_id, params=chunk))

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        retry(lambda: self._client.log_batch(self.run_id, metrics=items))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items()]
        retry(lambda: self._client.log_batch(self.run_id, tags=items))

    def log_artifacts(self, paths: Iterable[Path]) -> None:
        for path in paths:
            retry(lambda path=path: self._client.log_artifact(self.run_id, str(path)))

    def end(self, status: str) -> None:
        retry(lambda: self._client.set_terminated(self.run_id, status=status))


def redact(url: str) -> str:
    """A store URL without its password, for tags, logs and reports."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _param_str(value: Any) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."
