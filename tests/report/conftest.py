"""A small real store, made once per session by tiny sweeps through the real `ablate train`:

- experiment `rep`, task digits: an Optuna random search of 6 trials each for vanilla and nfg
  (learning rate, momentum as 1 - u, hidden size, input noise), i.e. two studies with parent
  runs; one plain run of a linear cell that diverges;
- the same experiment, task counting: a plain multirun of lstm and gru (Weiss's question).

and its report, made once by `ablate report experiment=rep` as a user runs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_ablate

EXPERIMENT = "rep"
SEARCH = """\
# @package _global_
defaults:
  - override /hydra/sweeper: ablate
hydra:
  sweeper:
    n_trials: 6
    sampler: {name: random, seed: 0}
    params:
      optim:
        lr: {type: float, low: 0.01, high: 0.3, log: true}
        momentum: {type: float, low: 0.01, high: 1.0, log: true, transform: one_minus}
      model:
        hidden_size: {type: int, low: 4, high: 12, log: true}
        input_noise: {type: float, low: 0.0, high: 0.5}
"""
QUICK = [f"study={EXPERIMENT}", "tracking.log_artifacts=false"]
SEARCHED_CELLS = ("vanilla", "nfg")


@contextlib.contextmanager
def isolated(tmp_path_factory) -> Iterator[None]:
    """tests/conftest.py's per-test isolation, for session fixtures (which run before it)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ABLATE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "ablate-cache"))
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.delenv("ABLATE_MLFLOW_PARENT_RUN_ID", raising=False)
        yield


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report-store")
    conf = root / "conf"
    (conf / "search").mkdir(parents=True)
    (conf / "search" / "tiny.yaml").write_text(SEARCH)
    (conf / "cell").mkdir()
    (conf / "cell" / "linear.yaml").write_text(
        "name: linear\nkind: elman\nblock_activation: identity\n"
    )
    with isolated(tmp_path_factory):
        config = ["--config-dir", str(conf)]
        run_ablate(
            "train", "-m", *config, "search=tiny", "task=digits",
            f"cell={','.join(SEARCHED_CELLS)}", "trainer.max_epochs=2", *QUICK, cwd=root,
        )  # fmt: skip
        run_ablate(
            "train", *config, "task=digits", "cell=linear", "model.init_scale=1e6",
            "trainer.max_epochs=1", *QUICK, cwd=root,
        )  # fmt: skip
        run_ablate(
            "train", "-m", "task=counting", "cell=lstm,gru", "task.n_train=4", "task.n_max=8",
            "task.train_repeats=2", "model.hidden_size=4", "trainer.max_epochs=2", *QUICK,
            cwd=root,
        )  # fmt: skip
    return root


@pytest.fixture(scope="session")
def report(store, tmp_path_factory) -> Path:
    """`ablate report experiment=rep` run where the store is: reports/rep."""
    with isolated(tmp_path_factory):
        result = run_ablate("report", f"experiment={EXPERIMENT}", cwd=store)
    assert "report: done" in result.stdout
    return store / "reports" / EXPERIMENT
