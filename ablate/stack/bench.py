"""What stacking gains per hidden size: K trials trained one by one against the same K trials
as one stacked model, in the same process, alternating, with a control.

    python -m ablate.stack.bench --experiment greff2017 --task digits --sizes 20,60,150

Each trial is prepared as ``ablate train`` prepares it (its seed, its model, its task) with
equal hidden sizes (no padding), a learning rate and input noise of its own, and trains
``--epochs`` epochs (validation included). Rows: the seconds per trial alone and in a group
(medians over ``--repeats`` alternating pairs, with their spread), and the ratio; the control
row times the lone trials against themselves (1.00 within the machine's noise).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from ablate.paths import config_dir
from ablate.stack.group import GroupMember, train_group
from ablate.train.app import prepare
from ablate.train.loop import Trainer


def trainers(args: argparse.Namespace, size: int) -> list[Trainer]:
    out = []
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        for k in range(args.group):
            cfg = compose(
                "train",
                overrides=[
                    f"experiment={args.experiment}",
                    f"task={args.task}",
                    f"cell={args.cell}",
                    f"seed={k}",
                    f"model.hidden_size={size}",
                    f"optim.lr={1e-4 * (1 + k)}",
                    f"model.input_noise={0.05 * k}",
                    f"trainer.max_epochs={args.epochs}",
                    f"trainer.patience={args.epochs}",
                    "trainer.checkpoint=false",
                    "threads=1",
                    *args.override,
                ],
            )
            out.append(prepare(cfg).trainer)
    return out


def alone(args: argparse.Namespace, size: int) -> float:
    group = trainers(args, size)
    began = time.perf_counter()
    for trainer in group:
        torch.set_rng_state(trainer.initial_rng)
        trainer.fit()
    return (time.perf_counter() - began) / len(group)


def stacked(args: argparse.Namespace, size: int) -> float:
    group = trainers(args, size)
    began = time.perf_counter()
    train_group([GroupMember(t) for t in group])
    return (time.perf_counter() - began) / len(group)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ablate.stack.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--experiment", default="greff2017")
    parser.add_argument("--task", default="digits")
    parser.add_argument("--cell", default="vanilla")
    parser.add_argument("--sizes", default="20,60,150")
    parser.add_argument("--group", type=int, default=8, help="trials per group (K)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--override", action="append", default=[])
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    lines = [
        f"# Stacked trials: `experiment={args.experiment} task={args.task} cell={args.cell}`, "
        f"K={args.group}, {args.epochs} epochs",
        "",
        "Seconds per trial (median of alternating pairs, min-max), one thread; "
        + " ".join(f"`{o}`" for o in args.override),
        "",
        "| hidden | alone s | stacked s | ratio |",
        "| ---: | ---: | ---: | ---: |",
    ]
    first = int(args.sizes.split(",")[0])
    rows = [("control", alone, alone, first)] + [
        (str(size), alone, stacked, size) for size in (int(s) for s in args.sizes.split(","))
    ]
    for name, base, other, size in rows:
        a, b = [], []
        for _ in range(args.repeats):
            a.append(base(args, size))
            b.append(other(args, size))
        ratio = statistics.median(x / y for x, y in zip(a, b, strict=True))
        label = f"control ({size}, alone vs alone)" if name == "control" else name
        lines.append(f"| {label} | {spread(a)} | {spread(b)} | {ratio:.2f} |")
        print(lines[-1], flush=True)
    text = "\n".join([*lines, ""])
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
