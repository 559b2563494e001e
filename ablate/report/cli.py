"""``ablate report experiment=NAME``: regenerate a study's tables and figures from MLflow."""

from __future__ import annotations

import argparse
import re
import shlex
import tempfile
from pathlib import Path

from ablate.errors import AblateError
from ablate.report.build import Options, build
from ablate.report.store import open_source

_SAFE = re.compile(r"[^A-Za-z0-9_.=-]+")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ablate report",
        description=(
            "Regenerate the papers' tables and figures (Greff's Fig. 3 and hyperparameter "
            "analysis, Jozefowicz's Table 1, Weiss's counting limits, and a verdict per headline "
            "finding) from an MLflow store, into reports/NAME/."
        ),
        epilog="example: ablate report experiment=greff2017_smoke --holm",
    )
    parser.add_argument(
        "assignment",
        nargs="?",
        metavar="experiment=NAME",
        help="the experiment (experiments/NAME.yaml's study, or any MLflow experiment name)",
    )
    parser.add_argument("--experiment", help="the same, as an option")
    parser.add_argument(
        "--filter",
        dest="run_filter",
        help="an MLflow run filter, e.g. \"tags.cell != 'fgr'\"; alone: over every experiment",
    )
    parser.add_argument("--root", help="folder holding mlflow.db and optuna.db (default: here)")
    parser.add_argument(
        "--uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///ROOT/mlflow.db)",
    )
    parser.add_argument(
        "--optuna-storage",
        help="Optuna storage URL (default: ROOT/optuna.db, else the one the sweeps recorded)",
    )
    parser.add_argument("--out", type=Path, help="output folder (default: reports/NAME)")
    parser.add_argument("--holm", action="store_true", help="Holm-correct the Welch p-values")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    parser.add_argument("--reference", help="the cell others are tested against (vanilla)")
    parser.add_argument("--seed", type=int, default=0, help="seed of fANOVA and the forests")
    return parser


def _command(experiment: str | None, args: argparse.Namespace) -> str:
    """The command as the index shows it: the choices that change numbers, not the paths."""
    words = ["ablate", "report"]
    if experiment:
        words.append(f"experiment={experiment}")
    if args.run_filter:
        words += ["--filter", args.run_filter]
    if args.holm:
        words.append("--holm")
    for option in ("alpha", "reference", "seed"):
        if getattr(args, option) != _parser().get_default(option):
            words += [f"--{option}", str(getattr(args, option))]
    return shlex.join(words)


def default_folder(name: str) -> Path:
    """reports/NAME, with NAME made safe as a folder name."""
    return Path("reports") / _SAFE.sub("_", name)


def writable(folder: Path) -> None:
    """Refuse, before any work, a folder the report (or an archive) cannot be written to."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise AblateError(f"cannot write into {folder}: {err.strerror or err}") from None


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    experiment = args.experiment
    if args.assignment is not None:
        key, sep, value = args.assignment.partition("=")
        if not sep or key != "experiment" or not value:
            parser.error(f"expected experiment=NAME, got {args.assignment!r}")
        if experiment is not None and experiment != value:
            parser.error("experiment given twice")
        experiment = value
    if not 0 < args.alpha < 1:
        parser.error("--alpha must be in (0, 1)")
    if experiment is None and not args.run_filter:
        raise AblateError("name the runs to report: experiment=NAME, or --filter 'MLflow filter'")
    name = experiment or "filtered"
    out = args.out or default_folder(name)
    source = open_source(experiment, args.run_filter, args.root, args.uri, args.optuna_storage)
    writable(out)
    build(
        source,
        Options(
            out=out,
            holm=args.holm,
            seed=args.seed,
            alpha=args.alpha,
            reference=args.reference,
            command=_command(experiment, args),
        ),
    )
    return 0
