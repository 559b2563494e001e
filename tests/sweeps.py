"""Tiny real sweeps for tests: a search space, a user config folder, and the Optuna trials."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna

from tests.conftest import run_ablate

TINY_SEARCH = """\
# @package _global_
defaults:
  - override /hydra/sweeper: ablate
hydra:
  sweeper:
    n_trials: 6
    sampler: {name: random, seed: 0}
    heartbeat_interval: 1
    grace_period: 5
    params:
      optim:
        lr: {type: float, low: 0.01, high: 0.3, log: true}
      model:
        input_noise: {type: float, low: 0.0, high: 0.5}
"""
FAST = ["task=digits", "cell=nig", "model.hidden_size=8", "trainer.max_epochs=2"]


def write_conf(tmp_path: Path) -> Path:
    """A user config folder: search spaces `tiny` and `noise`, and a cell that diverges."""
    folder = tmp_path / "conf"
    (folder / "search").mkdir(parents=True)
    (folder / "search" / "tiny.yaml").write_text(TINY_SEARCH)
    (folder / "search" / "noise.yaml").write_text(  # for the pruner: the lr is set per run
        TINY_SEARCH.replace(
            "      optim:\n        lr: {type: float, low: 0.01, high: 0.3, log: true}\n", ""
        ).replace("    params:", "    pruner: {name: median, n_startup_trials: 1}\n    params:")
    )
    (folder / "cell").mkdir()
    (folder / "cell" / "linear.yaml").write_text(
        "name: linear\nkind: elman\nblock_activation: identity\n"
    )
    return folder


def sweep_command(conf: Path, *extra: str, search: str = "tiny") -> list[str]:
    """`ablate train -m` of a tiny search with the user config folder ``conf``."""
    return [
        sys.executable,
        "-m",
        "ablate",
        "train",
        "-m",
        "--config-dir",
        str(conf),
        f"search={search}",
        *FAST,
        *extra,
    ]


def sweep(conf: Path, root: Path, *extra: str, check: bool = True, search: str = "tiny"):
    return run_ablate(*sweep_command(conf, *extra, search=search)[3:], cwd=root, check=check)


def trials(root: Path, name: str = "default/nig/digits") -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{root / 'optuna.db'}"
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
