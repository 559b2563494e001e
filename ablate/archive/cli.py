"""``ablate archive export experiment=NAME`` and ``ablate archive import FILE``."""

from __future__ import annotations

import argparse
from pathlib import Path

ARCHIVE_FILE = "runs.parquet"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ablate archive",
        description=(
            "Move a study between machines as one file: export an experiment's MLflow runs and "
            "Optuna studies to reports/NAME/runs.parquet, or import such a file into the "
            "stores here (then report, browse or resume the sweep as on the original)."
        ),
        epilog=(
            "examples: ablate archive export experiment=greff2017; "
            "ablate archive import reports/greff2017/runs.parquet"
        ),
    )
    sub = parser.add_subparsers(dest="action", required=True)
    export = sub.add_parser("export", help="write an experiment's runs and studies to a file")
    export.add_argument("assignment", metavar="experiment=NAME")
    export.add_argument("--out", type=Path, help=f"the file (default: reports/NAME/{ARCHIVE_FILE})")
    load = sub.add_parser("import", help="recreate an archived experiment in the stores here")
    load.add_argument("file", type=Path)
    for p in (export, load):
        p.add_argument("--root", help="folder holding mlflow.db and optuna.db (default: here)")
        p.add_argument("--uri", help="MLflow tracking URI (default: sqlite:///ROOT/mlflow.db)")
        p.add_argument("--optuna-storage", help="Optuna storage URL (default: ROOT/optuna.db)")
    return parser


def main(argv: list[str]) -> int:
    from ablate.archive import records

    parser = _parser()
    args = parser.parse_args(argv)
    if args.action == "export":
        from ablate.archive.export import collect
        from ablate.report.cli import default_folder, writable
        from ablate.report.store import open_source

        key, sep, name = args.assignment.partition("=")
        if not sep or key != "experiment" or not name:
            parser.error(f"expected experiment=NAME, got {args.assignment!r}")
        out = args.out or default_folder(name) / ARCHIVE_FILE
        source = open_source(name, None, args.root, args.uri, args.optuna_storage)
        writable(out.parent)
        archive = collect(source)
        records.write(archive, out)
        size = out.stat().st_size / 2**20
        print(f"ablate archive: {archive.summary()} -> {out} ({size:.1f} MiB)")
        return 0

    from ablate.archive.restore import restore
    from ablate.search.storage import storage_url
    from ablate.tracking import tracking_uri, working_root

    archive = records.read(args.file)
    root = working_root(args.root)
    uri = tracking_uri(args.uri, root)
    made = restore(archive, uri, storage_url(args.optuna_storage, root), root)
    print(
        f"ablate archive: imported {archive.summary()} into {uri} "
        f"({made['runs']} runs, {made['studies']} studies, {made['trials']} trials)"
    )
    return 0
