"""Trials per hour of an experiment: one process on all threads against one job per core.

    python -m ablate.throughput --experiment quickstart --cores 2

Runs the experiment twice from scratch, in fresh folders, through the real CLI: once one
trial at a time on ``threads=CORES`` (torch's intra-op threads), once CORES trials side by
side on one thread each (both through the joblib launcher, so only the split differs). Two
rates per setup: over the whole command (start-up included: imports, stores, worker
processes) and over the busy span, from the first trial's start to the last one's end (as
MLflow recorded them), which is what a study of many trials sees. Prints a table with the
ratios and writes it to ``reports/bench/throughput.md``.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import optuna
from mlflow import MlflowClient


@dataclass(frozen=True)
class Throughput:
    setup: str
    trials: int
    wall: float  # seconds, the whole command
    span: float  # seconds, first trial start to last trial end

    def per_hour(self, seconds: float) -> float:
        return 3600 * self.trials / seconds


def complete_trials(root: Path) -> int:
    storage = f"sqlite:///{root / 'optuna.db'}"
    total = 0
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        total += len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
    return total


def busy_span(root: Path) -> float:
    """Seconds from the first job run's start to the last one's end, in the root's store."""
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(ids, "tags.`ablate.kind` = 'job'", max_results=50_000)
    if not runs:
        raise RuntimeError(f"no job runs in {root / 'mlflow.db'}")
    return (max(r.info.end_time for r in runs) - min(r.info.start_time for r in runs)) / 1000


def measure(setup: str, experiment: str, overrides: list[str]) -> Throughput:
    with tempfile.TemporaryDirectory(prefix="ablate-throughput-") as folder:
        root = Path(folder)
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "ablate", "train", "-m", f"experiment={experiment}", *overrides],
            cwd=root,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - began
        return Throughput(setup, complete_trials(root), wall, busy_span(root))


def table(experiment: str, cores: int, rows: list[Throughput]) -> str:
    base = rows[0]
    lines = [
        f"# Throughput of `experiment={experiment}` on {cores} cores",
        "",
        f"{date.today()}, {platform.processor() or platform.machine()}. Whole command: start-up "
        "included. Busy span: first trial start to last trial end (MLflow run times).",
        "",
        "| setup | trials | wall s | trials/hour | ratio | busy span s | trials/hour | ratio |",
        "| :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        whole, busy = r.per_hour(r.wall), r.per_hour(r.span)
        lines.append(
            f"| {r.setup} | {r.trials} | {r.wall:.1f} | {whole:.0f} | "
            f"{whole / base.per_hour(base.wall):.2f} | {r.span:.1f} | {busy:.0f} | "
            f"{busy / base.per_hour(base.span):.2f} |"
        )
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ablate.throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--experiment", default="quickstart")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--trials", type=int, help="trials per study (default: the experiment's)")
    parser.add_argument("--out", default="reports/bench/throughput.md")
    args = parser.parse_args(argv)
    n = args.cores
    extra = [] if args.trials is None else [f"hydra.sweeper.n_trials={args.trials}"]
    setups = {
        f"1 job x {n} threads": [
            "hydra.launcher.n_jobs=1",
            f"threads={n}",
            "hydra.sweeper.n_jobs=1",
        ],
        f"{n} jobs x 1 thread": [
            f"hydra.launcher.n_jobs={n}",
            "threads=1",
            f"hydra.sweeper.n_jobs={n}",
        ],
    }
    rows = []
    for name, overrides in setups.items():
        row = measure(name, args.experiment, ["hydra/launcher=joblib", *overrides, *extra])
        print(
            f"{name}: {row.trials} trials in {row.wall:.1f} s ({row.span:.1f} s busy)", flush=True
        )
        rows.append(row)
    text = table(args.experiment, n, rows)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
