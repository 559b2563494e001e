"""``ablate status experiment=NAME``: how far an experiment's sweep has got, read while it runs
(sqlite or a server). A search is read from its Optuna storage alone: per study the trials
finished, pruned, diverged, failed and running of its n_trials, the best value so far. A plain
multirun (a grid of comma lists, e.g. weiss2018) has no Optuna storage: its jobs are read from
MLflow, per (cell, task) of the overlay's grid. Then the pace over the last hour and the time
left at that pace."""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from ablate.errors import AblateError
from ablate.report.runs import search_runs, state_of
from ablate.report.scale import planned
from ablate.report.store import Source, describe, mlflow_experiment_name, open_source
from ablate.search.storage import open_storage, storage_url
from ablate.search.trial import ERROR_ATTR, MLFLOW_RUN_ATTR, SURPLUS_ATTR, counted
from ablate.tracking import working_root

HOUR = 3600.0
COLUMNS = ("finished", "pruned", "diverged", "failed", "running", "queued")
# A plain multirun's jobs: "interrupted" ones (KILLED in MLflow) continue when it is rerun.
JOB_COLUMNS = ("finished", "diverged", "failed", "running", "interrupted")
PENDING = ("running", "queued", "interrupted")


@dataclass(frozen=True)
class StudyProgress:
    name: str
    states: dict[str, int]
    n_trials: int | None
    best: float | None
    spans: list[tuple[float, float]]  # start and end times of its ended trials, for the pace

    @property
    def done(self) -> int:
        return sum(n for k, n in self.states.items() if k not in PENDING)


def _state(trial: FrozenTrial) -> str | None:
    """How a trial that fills a slot stands (given as one of :func:`counted`'s); None for a
    surplus one."""
    if SURPLUS_ATTR in trial.system_attrs:
        return None
    if trial.state is TrialState.RUNNING:
        # Asked in a launch batch but not yet started by a worker: no MLflow run attached yet.
        return "running" if MLFLOW_RUN_ATTR in trial.system_attrs else "queued"
    if trial.state is TrialState.PRUNED:
        return "pruned"
    if trial.system_attrs.get(ERROR_ATTR) == "diverged":
        return "diverged"
    return "failed" if trial.state is TrialState.FAIL else "finished"


def progress(storage: BaseStorage, name: str, n_trials: int | None) -> StudyProgress:
    study = optuna.load_study(study_name=name, storage=storage)
    states = dict.fromkeys(COLUMNS, 0)
    spans = []
    for trial in counted(study.get_trials(deepcopy=False)):
        state = _state(trial)
        if state is None:
            continue
        states[state] += 1
        if trial.datetime_start is not None and trial.datetime_complete is not None:
            spans.append((trial.datetime_start.timestamp(), trial.datetime_complete.timestamp()))
    complete = [
        t.value
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.system_attrs.get(ERROR_ATTR) != "diverged"
    ]
    maximise = study.direction.name == "MAXIMIZE"
    best = (max if maximise else min)(complete) if complete else None
    return StudyProgress(name, states, n_trials, best, spans)


def duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min" if minutes % 60 else f"{minutes // 60} h"


def summary(
    experiment: str, studies: list[StudyProgress], planned_total: int | None, unit: str = "trials"
) -> str:
    """One line: "greff2017: 1,234 of 5,400 trials, 2 running, ~5 h 10 min left"."""
    done = sum(s.done for s in studies)
    running = sum(s.states["running"] for s in studies)
    now = time.time()
    recent_spans = [(a, b) for s in studies for a, b in s.spans if now - b <= HOUR]
    recent = len(recent_spans)
    # The pace over the last hour, or since the first of those trials started if that is
    # later (a sweep younger than an hour).
    window = min(HOUR, now - min(a for a, _ in recent_spans)) if recent_spans else HOUR
    total = f" of {planned_total:,}" if planned_total else ""
    line = f"{experiment}: {done:,}{total} {unit}, {running} running"
    if planned_total and done >= planned_total:
        return line + ", complete"
    if planned_total and recent:
        left = (planned_total - done) / recent * window
        return line + f", {recent} in the last hour, ~{duration(left)} left"
    return line + (f", {recent} in the last hour" if recent else ", none finished in the last hour")


def table(studies: list[StudyProgress], columns: tuple[str, ...] = COLUMNS) -> str:
    header = ["study", *columns, "of", "best"]
    rows = [
        [
            s.name,
            *(str(s.states[k]) for k in columns),
            str(s.n_trials or "?"),
            "" if s.best is None else f"{s.best:.4g}",
        ]
        for s in studies
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in pairs)

    return "\n".join(line(row) for row in [header, *rows])


_JOB_STATES = {"finished": "finished", "diverged": "diverged", "failed": "failed",
               "running": "running", "killed": "interrupted"}  # fmt: skip


def job_progress(
    source: Source, experiment: str, grid: dict[str, list[str]]
) -> tuple[list[StudyProgress], int]:
    """A plain multirun's jobs, one row per (cell, task), from the job runs whose overrides
    name ``experiment=NAME`` (its runs may share their study with others, as modern_counting's
    do with modern's search); and the grid's number of jobs."""
    total = math.prod(len(values) for values in grid.values())
    per_pair = total // math.prod(len(grid.get(key, [""])) for key in ("cell", "task"))
    flag = f"experiment={experiment}"
    pairs: dict[str, list] = {}
    for run in search_runs(source, "job"):
        tags = run.data.tags
        overrides = tags.get("hydra.overrides", "").split()
        if flag in overrides:
            # The grid's own values: a task preset (anbn) may carry its task's name (counting).
            chosen = dict(o.split("=", 1) for o in overrides if "=" in o)
            cell, task = (chosen.get(key, tags.get(key)) for key in ("cell", "task"))
            pairs.setdefault(f"{tags.get('study')}/{cell}/{task}", []).append(run)
    studies = []
    for name, runs in sorted(pairs.items()):
        states = dict.fromkeys(JOB_COLUMNS, 0)
        spans, values, maximise = [], [], False
        for run in runs:
            tags, info = run.data.tags, run.info
            state = _JOB_STATES[state_of(info.status, tags)]
            states[state] += 1
            if state in ("finished", "diverged", "failed") and info.end_time:
                spans.append((info.start_time / 1000, info.end_time / 1000))
            value = run.data.metrics.get(f"best_valid_{tags.get('metric')}")
            if state == "finished" and value is not None:
                values.append(value)
                maximise = tags.get("direction") == "maximize"
        best = (max if maximise else min)(values) if values else None
        studies.append(StudyProgress(name, states, per_pair, best, spans))
    return studies, total


def search_progress(url: str, experiment: str) -> tuple[list[StudyProgress], int | None]:
    """A search's studies from its Optuna storage, and the trials it plans in all."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise AblateError(f"no Optuna storage at {url.removeprefix('sqlite:///')}: run a sweep "
                          "there first, or give --root DIR or --optuna-storage URL")  # fmt: skip
    storage = open_storage(url)
    prefix = mlflow_experiment_name(experiment) + "/"
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage)
                   if s.study_name.startswith(prefix))  # fmt: skip
    if not names:
        raise AblateError(
            f"no study of experiment {experiment!r} in the Optuna storage ({describe(url)}): "
            "check the name, or run its sweep first"
        )
    plan = planned(experiment)
    n_trials = plan.get("hydra.sweeper.n_trials")
    studies = [progress(storage, name, n_trials) for name in names]
    return studies, n_trials * plan.get("studies", len(names)) if n_trials else None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="ablate status",
        description="How far an experiment's sweep has got: trials (or a plain multirun's jobs) "
        "per study, pace, time left. Reads the Optuna storage, or for a plain multirun the "
        "MLflow store; safe while the sweep runs.",
        epilog="example: ablate status experiment=greff2017",
    )
    parser.add_argument("assignment", metavar="experiment=NAME")
    parser.add_argument("--root", help="folder holding optuna.db and mlflow.db (default: here)")
    parser.add_argument("--optuna-storage", help="Optuna storage URL (default: ROOT/optuna.db)")
    parser.add_argument("--uri", help="MLflow tracking URI, for a plain multirun")
    args = parser.parse_args(argv)
    key, sep, experiment = args.assignment.partition("=")
    if not sep or key != "experiment" or not experiment:
        parser.error(f"expected experiment=NAME, got {args.assignment!r}")
    grid = planned(experiment).get("grid")
    if grid:
        source = open_source(experiment, None, args.root, args.uri, None)
        studies, total = job_progress(source, experiment, grid)
        if not studies:
            raise AblateError(
                f"no job of experiment {experiment!r} in {describe(source.uri)}: run its sweep "
                "first"
            )
        print(table(studies, JOB_COLUMNS))
        print(summary(experiment, studies, total, unit="runs"))
        return 0
    studies, total = search_progress(
        storage_url(args.optuna_storage, working_root(args.root)), experiment
    )
    print(table(studies))
    print(summary(experiment, studies, total))
    return 0
