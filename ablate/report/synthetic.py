"""A Greff-sized store without 15 CPU-years: synthetic runs written through MLflow's and Optuna's
public APIs, shaped like the sweeper's (a parent run and an Optuna study per (variant, task),
the job's flat config as params, per-epoch curves, final metrics), to time ``ablate report``.

    python -m ablate.report.synthetic --root /tmp/greff-synthetic --runs 5400
    ablate report --root /tmp/greff-synthetic experiment=greff2017_synthetic

The outcomes follow the paper's findings on purpose (learning rate dominates, NFG and NOAF
hurt, NIG/NOG/NIAF hurt except on music, high rates diverge), so the report's verdicts have
something to find. They are not results.

Timing (this 2-core machine, mlflow 3.17, sqlite): filling 5,400 runs took 740 s; ``ablate
report`` on them took 36.6, 37.4 and 40.4 s while other jobs loaded the machine, and 37.5, 38.5
and 39.2 s on a quiet one (median of the six: 38.0 s): ~7 s to start, ~11 s to read the runs
through ``search_runs`` (MLflow builds an ORM object per param, tag and metric: ~400,000
here), ~15 s for fANOVA and the forests, the rest for figures and tables.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.trial import TrialState

from ablate.cells import layout, preset
from ablate.search.space import Dimension, parse_space
from ablate.search.storage import open_storage, storage_url
from ablate.search.sweep import SPACE_ATTR
from ablate.search.trial import ERROR_ATTR, MLFLOW_RUN_ATTR
from ablate.tracking import client, ensure_experiment, flatten, tracking_uri

CELLS = ("vanilla", "nig", "nfg", "nog", "niaf", "noaf", "np", "cifg", "fgr")


@dataclass(frozen=True)
class TaskShape:
    metric: str
    input_size: int
    output_size: int
    bidirectional: bool
    worst: float


TASKS = {
    "jsb": TaskShape("nll", 88, 88, False, 1e9),
    "vowels": TaskShape("error", 12, 9, True, 1.0),
    "digits": TaskShape("error", 8, 10, True, 1.0),
}
# Quality lost by each variant, as Greff found (music unharmed by NIG, NOG, NIAF).
PENALTY = {"nfg": 0.3, "noaf": 0.35, "nig": 0.15, "nog": 0.15, "niaf": 0.15}
MUSIC_SPARED = ("nig", "nog", "niaf")


@dataclass(frozen=True)
class Outcome:
    state: str  # finished, diverged, pruned
    valid: float
    test: float
    curve: list[float]  # valid metric per epoch
    best_epoch: int


def composed(cell: str, task: str, experiment: str) -> tuple[dict[str, Any], list[Dimension]]:
    """The job's resolved config and the search space, as ``ablate train`` composes them."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from ablate.paths import config_dir

    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[f"experiment={experiment}", f"cell={cell}", f"task={task}"],
            return_hydra_config=True,
        )
    space = parse_space(OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=True))
    job = {k: v for k, v in cfg.items() if k not in ("hydra", "tracking", "sweep")}
    config = OmegaConf.to_container(OmegaConf.create(job), resolve=True)
    assert isinstance(config, dict)
    return config, space


def sample(distribution: BaseDistribution, rng: np.random.Generator) -> Any:
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[int(rng.integers(len(distribution.choices)))]
    assert isinstance(distribution, FloatDistribution | IntDistribution)
    low, high = float(distribution.low), float(distribution.high)
    if isinstance(distribution, IntDistribution):
        low, high = low - 0.5, high + 0.4999
    value = (
        math.exp(rng.uniform(math.log(low), math.log(high)))
        if distribution.log
        else (rng.uniform(low, high))
    )
    if isinstance(distribution, IntDistribution):
        return int(min(max(round(value), distribution.low), distribution.high))
    return float(value)


def outcome(
    rng: np.random.Generator, cell: str, task: str, config: dict[str, Any], max_epochs: int
) -> Outcome:
    """Quality peaks at lr ~ 3e-3, grows with width, falls with input noise; then the
    variant's penalty; errors in [0, 1], jsb's NLL per frame around 4-12."""
    shape = TASKS[task]
    x = math.log10(config["optim.lr"])
    if x > -2.4 and rng.random() < (x + 2.4) * (2.5 if cell == "noaf" else 1.2):
        return Outcome("diverged", math.nan, math.nan, [], 0)
    quality = math.exp(-(((x + 2.5) / 1.3) ** 2))
    quality *= 0.75 + 0.25 * math.log(config["model.hidden_size"] / 20) / math.log(10)
    quality *= 1 - 0.3 * config["model.input_noise"] ** 2
    spared = task == "jsb" and cell in MUSIC_SPARED
    penalty = 0.0 if spared else PENALTY.get(cell, 0.0)
    quality = quality * (1 - penalty) - 0.3 * penalty  # hurts good and bad settings alike
    if shape.metric == "error":
        test = float(np.clip(0.9 - 0.85 * quality + rng.normal(0, 0.03), 0.01, 0.99))
        valid = float(np.clip(test + rng.normal(0, 0.015), 0.0, 1.0))
        start = 0.9
    else:
        test = float(12.0 - 8.0 * quality + rng.normal(0, 0.25))
        valid = test + float(rng.normal(0, 0.1))
        start = 14.0
    epochs = int(rng.integers(5, max_epochs + 1))
    decay = np.exp(-np.arange(1, epochs + 1) / max(1.0, epochs / 4))
    curve = [float(v) for v in valid + (start - valid) * decay + rng.normal(0, 0.005, epochs)]
    best_epoch = int(np.argmin(curve)) + 1
    curve[best_epoch - 1] = valid
    state = "pruned" if rng.random() < 0.02 else "finished"
    return Outcome(state, valid, test, curve, best_epoch)


def parameter_count(cell: str, task: str, hidden: int) -> int:
    shape = TASKS[task]
    directions = 2 if shape.bidirectional else 1
    recurrent = layout(preset(cell), shape.input_size, hidden).num_parameters()
    return directions * recurrent + (directions * hidden + 1) * shape.output_size


def write_run(
    mlflow_client: Any,
    experiment_id: str,
    parent_id: str,
    name: str,
    number: int,
    cell: str,
    task: str,
    params: dict[str, Any],
    result: Outcome,
    clock: int,
) -> str:
    from mlflow.entities import Metric, Param

    shape = TASKS[task]
    tags = {
        "cell": cell,
        "task": task,
        "seed": "0",
        "study": params["study"],
        "metric": shape.metric,
        "direction": "minimize",
        "ablate.kind": "job",
        "optuna.study": name,
        "optuna.trial": str(number),
        "mlflow.parentRunId": parent_id,
        "ablate.synthetic": "true",
    }
    if result.state == "diverged":
        tags["failure_reason"] = "training loss became nan at epoch 1, batch 3"
    if result.state == "pruned":
        tags.update({"ablate.pruned": "true", "failure_reason": "pruned by the study's pruner"})
    run = mlflow_client.create_run(
        experiment_id, start_time=clock, tags=tags, run_name=f"{cell}/{task}/trial{number}"
    )
    run_id = run.info.run_id
    curve = result.curve if result.state != "pruned" else result.curve[:3]
    metrics = []
    for epoch, value in enumerate(curve, start=1):
        metrics += [
            Metric(f"valid_{shape.metric}", value, clock, epoch),
            Metric("valid_loss", value * 1.05, clock, epoch),
            Metric("train_loss", value * 0.95, clock, epoch),
            Metric("lr", params["optim.lr"], clock, epoch),
            Metric("epoch_seconds", 1.0, clock, epoch),
        ]
    if result.state == "finished":
        final = {
            f"best_valid_{shape.metric}": result.valid,
            f"test_{shape.metric}": result.test,
            "best_valid_loss": result.valid * 1.05,
            "test_loss": result.test * 1.05,
            "num_parameters": parameter_count(cell, task, params["model.hidden_size"]),
            "epochs": len(curve),
            "best_epoch": result.best_epoch,
            "train_seconds": float(len(curve)),
        }
        if shape.metric == "error":
            final.update(best_valid_accuracy=1 - result.valid, test_accuracy=1 - result.test)
        metrics += [Metric(k, float(v), clock, 0) for k, v in final.items()]
    mlflow_client.log_batch(
        run_id,
        metrics=metrics,
        params=[Param(k, "null" if v is None else str(v)) for k, v in params.items()],
    )
    status = {"finished": "FINISHED", "diverged": "FAILED", "pruned": "KILLED"}[result.state]
    mlflow_client.set_terminated(run_id, status=status, end_time=clock + 1000)
    return str(run_id)


def fill(root: Path, runs: int, experiment: str, seed: int) -> tuple[str, int]:
    """Write ``runs`` job runs (rounded up to a multiple of 27), return the experiment name and
    how many were written."""
    from mlflow.entities import Metric

    trials = math.ceil(runs / (len(CELLS) * len(TASKS)))
    uri = tracking_uri(None, root)
    name = f"{experiment}_synthetic"
    experiment_id = ensure_experiment(uri, name, root)
    mlflow_client = client(uri)
    storage_path = storage_url(None, root)
    storage = open_storage(storage_path)
    rng = np.random.default_rng(seed)
    clock = 1_700_000_000_000
    written = 0
    for task in TASKS:
        for cell in CELLS:
            config, space = composed(cell, task, experiment)
            study_name = f"{name}/{cell}/{task}"
            study = optuna.create_study(
                storage=storage, study_name=study_name, direction="minimize"
            )
            study.set_user_attr(
                SPACE_ATTR,
                json.dumps(
                    {d.key: [distribution_to_json(d.distribution), d.transform] for d in space},
                    sort_keys=True,
                ),
            )
            parent = mlflow_client.create_run(
                experiment_id,
                start_time=clock,
                run_name=f"study {study_name}",
                tags={
                    "ablate.kind": "study",
                    "optuna.study": study_name,
                    "optuna.storage": storage_path,
                    "study": name,
                    "direction": "minimize",
                },
            ).info.run_id
            frozen = []
            for number in range(trials):
                raw = {d.key: sample(d.distribution, rng) for d in space}
                flat = flatten({**config, "study": name})
                flat.update({d.key: d.value(raw[d.key]) for d in space})
                flat.update({"cell.preset": cell, "task.metric": TASKS[task].metric})
                result = outcome(rng, cell, task, flat, min(40, int(flat["trainer.max_epochs"])))
                clock += 60_000
                run_id = write_run(
                    mlflow_client,
                    experiment_id,
                    parent,
                    study_name,
                    number,
                    cell,
                    task,
                    flat,
                    result,
                    clock,
                )
                value = TASKS[task].worst if result.state == "diverged" else result.valid
                attrs = {MLFLOW_RUN_ATTR: run_id}
                if result.state == "diverged":
                    attrs[ERROR_ATTR] = "diverged"
                pruned = result.state == "pruned"
                frozen.append(
                    optuna.trial.create_trial(
                        state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
                        value=None if pruned else value,
                        params=raw,
                        distributions={d.key: d.distribution for d in space},
                        system_attrs=attrs,
                        intermediate_values=dict(enumerate(result.curve[:3], start=1))
                        if pruned
                        else {},
                    )
                )
                written += 1
            study.add_trials(frozen)
            complete = [t for t in frozen if t.state is TrialState.COMPLETE]
            summary = {
                "best_value": min(t.value for t in complete),
                "n_complete": len(complete),
                "n_pruned": len(frozen) - len(complete),
                "n_fail": 0,
            }
            mlflow_client.log_batch(
                parent, metrics=[Metric(k, float(v), clock, 0) for k, v in summary.items()]
            )
            mlflow_client.set_terminated(parent, status="FINISHED", end_time=clock)
            print(f"synthetic: {study_name}: {trials} runs", flush=True)
    return name, written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ablate.report.synthetic",
        description="Fill an MLflow store (and Optuna storage) with synthetic Greff-shaped runs.",
    )
    parser.add_argument("--root", required=True, type=Path, help="folder of the new store")
    parser.add_argument("--runs", type=int, default=5400, help="job runs (9 x 3 x 200 = 5,400)")
    parser.add_argument(
        "--experiment", default="greff2017", help="whose config and search space to mimic"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.runs <= 0:
        parser.error("--runs must be positive")
    if (args.root / "mlflow.db").exists():
        parser.error(f"{args.root} already holds a store; give a new folder")
    start = time.perf_counter()
    name, written = fill(args.root.resolve(), args.runs, args.experiment, args.seed)
    print(
        f"synthetic: {written} runs in experiment {name!r} at {args.root} "
        f"({time.perf_counter() - start:.0f} s); report it with:\n"
        f"  ablate report --root {args.root} experiment={name}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
