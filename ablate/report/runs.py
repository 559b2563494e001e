"""MLflow runs as one tidy frame: a row per job run, the columns a report reads.

Every number comes from what ``ablate train`` logged (tags, flat params, final metrics); runs
are read in pages through the public client, and nothing else of the trainer is assumed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import pandas as pd

from ablate.errors import AblateError
from ablate.progress import bar
from ablate.report.store import Source

# Hyperparameters the analyses read, as the job received them (config keys).
NUMERIC_PARAMS = (
    "optim.lr",
    "optim.momentum",
    "optim.clip_norm",
    "model.hidden_size",
    "model.input_noise",
    "model.init_scale",
    "model.num_layers",
    "task.n_train",
    "trainer.max_epochs",
    "trainer.max_batches",
)
TEXT_PARAMS = ("cell.kind", "task.language")
STATES = ("finished", "pruned", "diverged", "failed", "killed", "running")
_DIVERGED = re.compile(r"\b(nan|inf)\b", re.IGNORECASE)
_PAGE = 10_000


def search_runs(source: Source, kind: str) -> list:
    """Every active run of the chosen experiments with ``ablate.kind = kind``."""
    clauses = [f"tags.`ablate.kind` = '{kind}'"]
    if source.run_filter and kind == "job":
        clauses.insert(0, source.run_filter)
    runs: list = []
    token = None
    while True:
        try:
            page = source.client.search_runs(
                list(source.experiments),
                filter_string=" and ".join(clauses),
                max_results=_PAGE,
                page_token=token,
            )
        except Exception as err:  # noqa: BLE001 - a bad filter or a store failure, one line
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise AblateError(f"cannot search runs in {source.uri}: {first}") from None
        runs += list(page)
        token = page.token
        if not token:
            return runs


def state_of(status: str, tags: dict[str, str]) -> str:
    """How a job ended, from its MLflow status and the tags ``ablate train`` sets."""
    if status == "FINISHED":
        return "finished"
    if status == "KILLED":
        return "pruned" if tags.get("ablate.pruned") == "true" else "killed"
    if status == "FAILED":
        return "diverged" if _DIVERGED.search(tags.get("failure_reason", "")) else "failed"
    return "running"


def _number(text: str | None) -> float:
    try:
        return float(text) if text is not None else math.nan
    except ValueError:
        return math.nan


def load_jobs(source: Source) -> pd.DataFrame:
    """One row per job run, sorted by experiment, task, cell, start time and trial."""
    rows = []
    for run in bar(search_runs(source, "job"), "read runs"):
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        metric = tags.get("metric", "")
        trial = tags.get("optuna.trial")
        row = {
            "run_id": run.info.run_id,
            "experiment": source.experiments[str(run.info.experiment_id)],
            "cell": tags.get("cell", params.get("cell.name", "?")),
            "task": tags.get("task", params.get("task.name", "?")),
            "metric": metric,
            "direction": tags.get("direction", "minimize"),
            "state": state_of(run.info.status, tags),
            "study": tags.get("optuna.study", ""),
            "components": tags.get("cell.components", ""),
            "trial": int(trial) if trial is not None and trial.isdigit() else -1,
            "seed": int(_number(tags.get("seed", "0"))),
            "start_time": int(run.info.start_time or 0),
            "valid": metrics.get(f"best_valid_{metric}", math.nan),
            "test": metrics.get(f"test_{metric}", math.nan),
            "num_parameters": metrics.get("num_parameters", math.nan),
            "epochs": metrics.get("epochs", math.nan),
            "best_epoch": metrics.get("best_epoch", math.nan),
            "train_seconds": metrics.get("train_seconds", math.nan),
        }
        row.update({k: v for k, v in metrics.items() if k.startswith(("test_", "best_valid_"))})
        row.update({k: _number(params.get(k)) for k in NUMERIC_PARAMS})
        row.update({k: params.get(k, "") for k in TEXT_PARAMS})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    # A finished run reports its test metrics; an unfinished one has none to compare.
    frame.loc[frame["state"] != "finished", ["valid", "test"]] = math.nan
    # Run ids last: an imported archive gives its runs new ones (ablate.archive).
    order = ["experiment", "task", "cell", "start_time", "study", "trial", "run_id"]
    return frame.sort_values(order, kind="mergesort").reset_index(drop=True)


def drawn_cells(jobs: pd.DataFrame) -> pd.Series:
    """Which job runs a component search made: each drew its own cell, so none has a name."""
    return jobs["components"] != ""


def load_studies(source: Source) -> pd.DataFrame:
    """The sweeps' parent runs: one per Optuna study (``ablate.kind = study``)."""
    rows = [
        {
            "experiment": source.experiments[str(run.info.experiment_id)],
            "study": run.data.tags.get("optuna.study", ""),
            "storage": run.data.tags.get("optuna.storage", ""),
            "status": run.info.status,
        }
        for run in search_runs(source, "study")
    ]
    return pd.DataFrame(rows, columns=["experiment", "study", "storage", "status"])


def histories(source: Source, run_ids: Iterable[str], keys: Iterable[str]) -> pd.DataFrame:
    """Per-epoch metric histories of a few runs (the best ones): run_id, key, step, value."""
    rows = []
    for run_id in run_ids:
        for key in keys:
            for m in source.client.get_metric_history(run_id, key):
                rows.append({"run_id": run_id, "key": key, "step": m.step, "value": m.value})
    frame = pd.DataFrame(rows, columns=["run_id", "key", "step", "value"])
    return frame.sort_values(["run_id", "key", "step"], kind="mergesort").reset_index(drop=True)
