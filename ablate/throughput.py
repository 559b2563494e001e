"""Trials per hour of an experiment: one process on all threads against one job per core.

    python -m ablate.throughput --experiment quickstart --cores 2

Runs the experiment twice from scratch, in fresh folders, through the real CLI: once one
trial at a time on ``threads=CORES`` (torch's intra-op threads), once CORES trials side by
side on one thread each (both through the joblib launcher, so only the split differs). Prints a
table with the ratio and writes it to ``reports/bench/throughput.md``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna


def _complete_trials(root: Path) -> int:
    storage = f"sqlite:///{root / 'optuna.db'}"
    total = 0
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        total += len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
    return total


def _run(experiment: str, overrides: list[str]) -> tuple[float, int]:
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
        return time.perf_counter() - began, _complete_trials(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ablate.throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--experiment", default="quickstart")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", default="reports/bench/throughput.md")
    args = parser.parse_args(argv)
    n = args.cores
    setups = {
        f"1 job x {n} threads": [
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=1",
            f"threads={n}",
            "hydra.sweeper.n_jobs=1",
        ],
        f"{n} jobs x 1 thread": [
            "hydra/launcher=joblib",
            f"hydra.launcher.n_jobs={n}",
            "threads=1",
            f"hydra.sweeper.n_jobs={n}",
        ],
    }
    rows = []
    for name, overrides in setups.items():
        seconds, trials = _run(args.experiment, overrides)
        rows.append((name, trials, seconds, 3600 * trials / seconds))
        print(f"{name}: {trials} trials in {seconds:.1f} s", flush=True)
    base = rows[0][3]
    lines = [
        f"# Throughput of `experiment={args.experiment}` on {n} cores",
        "",
        "| setup | trials | wall s | trials/hour | ratio |",
        "| :--- | ---: | ---: | ---: | ---: |",
        *[f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.0f} | {r[3] / base:.2f} |" for r in rows],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
