"""Trials per hour of an experiment under different launchers, in the same run.

    python -m ablate.throughput --experiment quickstart --cores 2
    python -m ablate.throughput --experiment greff2017_smoke --setups joblib,batched \
        --trials 2 --override trainer.max_epochs=150 --override trainer.patience=10

Runs the experiment from scratch, in fresh folders, through the real CLI, once per setup:
``threads``, one trial at a time on ``threads=CORES`` (torch's intra-op threads); ``joblib``,
CORES trials side by side on one thread each; ``batched``, CORES workers each training a
group of up to K trials as one stacked model (``hydra/launcher=batched``, K from
``--group-sizes``). With ``--repeats``, the setups alternate and each rate is the median.
Two rates per setup: over the whole command (start-up included: imports, stores, worker
processes) and over the busy span, from the first trial's start to the last one's end (as
MLflow recorded them), which is what a study of many trials sees; ratios are against the
first setup. A second table splits the worker time: training (epochs and validation, by
hidden size) and the rest of each job (set-up, test evaluation, MLflow, Optuna). Writes both
to ``--out``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import optuna
from mlflow import MlflowClient

# Hidden-size buckets of the time split (Greff's range is 20-200).
BUCKETS = ((0, 40), (40, 80), (80, 140), (140, 10**9))


@dataclass(frozen=True)
class Throughput:
    setup: str
    trials: int
    wall: float  # seconds, the whole command
    span: float  # seconds, first trial start to last trial end
    job_seconds: float  # the job runs' durations, summed
    train_seconds: tuple[float, ...]  # epochs and validation, summed per hidden-size bucket

    def per_hour(self, seconds: float) -> float:
        return 3600 * self.trials / seconds


def complete_trials(root: Path) -> int:
    storage = f"sqlite:///{root / 'optuna.db'}"
    total = 0
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        total += len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
    return total


def job_runs(root: Path) -> list:
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(ids, "tags.`ablate.kind` = 'job'", max_results=50_000)
    if not runs:
        raise RuntimeError(f"no job runs in {root / 'mlflow.db'}")
    return runs


def busy_span(runs: list) -> float:
    """Seconds from the first job run's start to the last one's end."""
    return (max(r.info.end_time for r in runs) - min(r.info.start_time for r in runs)) / 1000


def training_split(runs: list) -> tuple[float, ...]:
    seconds = [0.0] * len(BUCKETS)
    for run in runs:
        hidden = int(run.data.params.get("model.hidden_size", 0))
        k = next(i for i, (low, high) in enumerate(BUCKETS) if low <= hidden < high)
        seconds[k] += run.data.metrics.get("train_seconds", 0.0)
    return tuple(seconds)


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
        runs = job_runs(root)
        jobs = sum((r.info.end_time - r.info.start_time) / 1000 for r in runs)
        return Throughput(
            setup, complete_trials(root), wall, busy_span(runs), jobs, training_split(runs)
        )


def median(rows: list[Throughput]) -> Throughput:
    """Each measure's median over the repeats of one setup."""
    first = rows[0]
    return Throughput(
        first.setup,
        first.trials,
        statistics.median(r.wall for r in rows),
        statistics.median(r.span for r in rows),
        statistics.median(r.job_seconds for r in rows),
        tuple(statistics.median(r.train_seconds[k] for r in rows) for k in range(len(BUCKETS))),
    )


def table(experiment: str, cores: int, rows: list[Throughput], note: str = "") -> str:
    base = rows[0]
    lines = [
        f"# Throughput of `experiment={experiment}` on {cores} cores",
        "",
        f"{date.today()}, {platform.processor() or platform.machine()}. Whole command: start-up "
        "included. Busy span: first trial start to last trial end (MLflow run times)."
        + (f" {note}" if note else ""),
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
    names = [
        f"hidden {low}-{high - 1}" if high < 10**9 else f"hidden {low}+" for low, high in BUCKETS
    ]
    lines += [
        "",
        "Worker seconds: training (epochs with their validation) by hidden size, and the rest "
        "of the jobs (set-up, test evaluation, MLflow, Optuna).",
        "",
        f"| setup | {' | '.join(names)} | training | rest of the jobs |",
        f"| :--- | {' | '.join('---:' for _ in names)} | ---: | ---: |",
    ]
    for r in rows:
        train = sum(r.train_seconds)
        lines.append(
            f"| {r.setup} | {' | '.join(f'{s:.0f}' for s in r.train_seconds)} | {train:.0f} | "
            f"{r.job_seconds - train:.0f} |"
        )
    return "\n".join([*lines, ""])


def setups(names: list[str], cores: int, group_sizes: list[int]) -> dict[str, list[str]]:
    known = {
        "threads": {
            f"1 job x {cores} threads": [
                "hydra/launcher=joblib",
                "hydra.launcher.n_jobs=1",
                f"threads={cores}",
                "hydra.sweeper.n_jobs=1",
            ]
        },
        "joblib": {
            f"{cores} jobs x 1 thread": [
                "hydra/launcher=joblib",
                f"hydra.launcher.n_jobs={cores}",
                "threads=1",
                f"hydra.sweeper.n_jobs={cores}",
            ]
        },
        "batched": {
            f"batched, {cores} workers x {k} trials": [
                "hydra/launcher=batched",
                f"hydra.launcher.n_jobs={cores}",
                f"hydra.launcher.group_size={k}",
                "threads=1",
                f"hydra.sweeper.n_jobs={cores}",
            ]
            for k in group_sizes
        },
    }
    out: dict[str, list[str]] = {}
    for name in names:
        if name not in known:
            raise SystemExit(f"python -m ablate.throughput: unknown setup {name!r}")
        out.update(known[name])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ablate.throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--experiment", default="quickstart")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--trials", type=int, help="trials per study (default: the experiment's)")
    parser.add_argument(
        "--setups",
        default="threads,joblib",
        help="comma-separated: threads, joblib, batched (the first is the base)",
    )
    parser.add_argument("--group-sizes", default="8", help="batched: trials per group, e.g. 4,8")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="an override for every setup, e.g. trainer.max_epochs=150",
    )
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs per setup")
    parser.add_argument("--out", default="reports/bench/throughput.md")
    args = parser.parse_args(argv)
    n = args.cores
    extra = [] if args.trials is None else [f"hydra.sweeper.n_trials={args.trials}"]
    extra += args.override
    chosen = setups(args.setups.split(","), n, [int(k) for k in args.group_sizes.split(",")])
    measured: dict[str, list[Throughput]] = {name: [] for name in chosen}
    for repeat in range(args.repeats):
        for name, overrides in chosen.items():
            row = measure(name, args.experiment, [*overrides, *extra])
            print(
                f"{name}: {row.trials} trials in {row.wall:.1f} s ({row.span:.1f} s busy)"
                + (f", repeat {repeat + 1}" if args.repeats > 1 else ""),
                flush=True,
            )
            measured[name].append(row)
    rows = [median(runs) for runs in measured.values()]
    note = " ".join(f"`{o}`" for o in extra)
    if args.repeats > 1:
        note = f"Medians of {args.repeats} alternating runs. {note}"
    text = table(args.experiment, n, rows, note.strip())
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
