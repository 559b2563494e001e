"""The ``ablate`` command: one subcommand per job, each a thin layer over the library."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence

from ablate.errors import AblateError


def _cells(argv: Sequence[str]) -> int:
    from ablate.cells import layout, preset, preset_names
    from ablate.cells.equations import equations

    parser = argparse.ArgumentParser(
        prog="ablate cells",
        description="List the cell presets, or show the equations one computes.",
    )
    parser.add_argument(
        "action", nargs="?", choices=["list", "show"], default="list", help="show: also NAME alone"
    )
    parser.add_argument("name", nargs="?", help="preset name or path to a YAML spec (for show)")
    parser.add_argument("--input-size", type=int, default=64, help="M for parameter counts")
    parser.add_argument("--hidden-size", type=int, default=128, help="N for parameter counts")
    words = list(argv)
    if words and not words[0].startswith("-") and words[0] not in ("list", "show"):
        words.insert(0, "show")  # `ablate cells NAME`, as a user would first try
    args = parser.parse_args(words)
    if args.input_size <= 0 or args.hidden_size <= 0:
        parser.error("--input-size and --hidden-size must be positive")
    m, n = args.input_size, args.hidden_size
    if args.action == "show":
        if not args.name:
            parser.error("show needs a preset name or a YAML path")
        spec = preset(args.name)
        print(f"{spec.name}: {spec.description} [{spec.paper}]")
        for line in equations(spec):
            print(f"  {line}")
        shapes = layout(spec, m, n).shapes()
        print(f"parameters per layer at M={m}, N={n}: {layout(spec, m, n).num_parameters():,}")
        for name, shape in shapes.items():
            print(f"  {name}: {' x '.join(map(str, shape))}")
        if spec.forget_bias:
            print(f"forget-gate bias initialised to {spec.forget_bias:g}")
        if spec.fused:
            print(f"runs torch's fused {spec.fused.upper()} kernel")
        return 0
    rows = [("preset", "paper", f"params (M={m}, N={n})", "description")]
    for name in preset_names():
        spec = preset(name)
        rows.append(
            (name, spec.paper, f"{layout(spec, m, n).num_parameters():,}", spec.description)
        )
    widths = [max(len(r[k]) for r in rows) for k in range(3)]
    for r in rows:
        print("  ".join(r[k].ljust(widths[k]) for k in range(3)) + "  " + r[3])
    print(f"\n{len(rows) - 1} presets; `ablate cells show NAME` prints a preset's equations.")
    return 0


def _report(argv: Sequence[str]) -> int:
    from ablate.report.cli import main

    return main(list(argv))


def _archive(argv: Sequence[str]) -> int:
    from ablate.archive.cli import main

    return main(list(argv))


def _status(argv: Sequence[str]) -> int:
    from ablate.status import main

    return main(list(argv))


def _bench(argv: Sequence[str]) -> int:
    from ablate.bench import main

    return main(list(argv))


def _train(argv: Sequence[str]) -> int:
    from ablate.train.app import main

    return main(list(argv))


def _ui(argv: Sequence[str]) -> int:
    from ablate.ui import main

    return main(list(argv))


COMMANDS: dict[str, tuple[str, Callable[[Sequence[str]], int]]] = {
    "train": ("train cells on tasks (Hydra; -m for sweeps), logging to MLflow", _train),
    "ui": ("open the MLflow UI on the project's store (127.0.0.1)", _ui),
    "status": ("how far an experiment's sweep has got, and the time left", _status),
    "report": ("regenerate a study's tables and figures from MLflow", _report),
    "archive": ("export a study's runs to one file, or import one into the stores here", _archive),
    "cells": ("list the cell presets, or show one's equations", _cells),
    "bench": ("benchmark every preset against torch's fused kernels", _bench),
}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _usage() -> str:
    lines = ["usage: ablate COMMAND [ARGS...]", "", "commands:"]
    width = max(map(len, COMMANDS))
    lines += [f"  {name.ljust(width)}  {help_}" for name, (help_, _) in COMMANDS.items()]
    lines += ["", "`ablate COMMAND --help` describes a command."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        sys.exit(0 if args else 2)
    name, rest = args[0], args[1:]
    # SIGTERM (a scheduler's kill, `kill PID`) unwinds like Ctrl-C, so runs and trials close.
    signal.signal(signal.SIGTERM, _interrupt)
    if name not in COMMANDS:
        print(f"ablate: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        sys.exit(2)
    try:
        code = COMMANDS[name][1](rest)
    except AblateError as err:
        print(f"ablate {name}: error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"ablate {name}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code)
