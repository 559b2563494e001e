"""The modern experiment: its overlays compose from jozefowicz2015's and weiss2018's, its report
puts the 2024 cells in the Table-1 machinery and the counting limits, and its two verdict rows
judge, stay untested without their cells, and read at smoke scale on a tiny real sweep."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from ablate.paths import config_dir
from ablate.report import jozefowicz, verdicts, weiss
from ablate.report.scale import measure
from tests.conftest import run_ablate

COMPETITIVE = "minGRU and minLSTM are competitive"
COUNTS = "The LSTM and the sLSTM count beyond 2 x the training range"


def _compose(experiment: str):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("train", overrides=[f"experiment={experiment}"], return_hydra_config=True)


def test_the_overlays_compose_from_the_papers_protocols():
    search = _compose("modern")
    assert search.study == "modern"
    assert list(search.hydra.sweeper.grid.cell) == [
        "lstm", "gru", "mingru", "minlstm", "indrnn", "slstm",
    ]  # fmt: skip
    assert list(search.hydra.sweeper.grid.task) == ["arith", "xml", "jsb"]
    # jozefowicz2015's, not copies: its sets, schedule, batch and width
    assert list(search.hydra.sweeper.params.optim.lr.choices) == [0.1, 0.2, 0.3, 0.5, 1, 2, 5]
    assert search.hydra.sweeper.n_trials == 20 and search.optim.schedule == "jozefowicz"
    assert (search.trainer.batch_size, search.model.hidden_size) == (20, 128)
    smoke = _compose("modern_smoke")
    assert smoke.study == "modern_smoke" and smoke.hydra.sweeper.n_trials < 20
    assert smoke.hydra.sweeper.grid.cell == search.hydra.sweeper.grid.cell

    counting = _compose("modern_counting")
    assert counting.study == "modern"  # beside the search, in one report
    params = counting.hydra.sweeper.params
    assert params.task == "anbn" and {"lstm", "slstm"} <= set(params.cell.split(","))
    assert (counting.task.language, counting.task.n_train, counting.optim.name) == (
        "anbn", 99, "adam",
    )  # fmt: skip
    assert _compose("modern_counting_smoke").study == "modern_smoke"


def test_modern_is_its_own_protocol_and_its_smoke_says_so():
    jobs = pd.DataFrame({"study": ["modern/lstm/arith"], "state": ["finished"]})
    assert measure("modern", jobs).label == "partial (1 of 360 trials)"
    # Only the counting grid has run (its jobs belong to no study): none of the search's trials.
    counting = pd.DataFrame({"study": [""] * 3, "state": ["finished"] * 3})
    assert measure("modern", counting).label == "partial (0 of 360 trials)"
    smoke = measure("modern_smoke", jobs.assign(**{"trainer.max_epochs": 2.0}))
    assert smoke.label == "at smoke scale" and "shrinks `modern`" in smoke.detail


def _evidence(tests: dict[str, list[float]], limits: dict[str, list[float]]):
    """Finished arith trials per cell (validation = test) and a^n b^n counting limits."""
    jobs = pd.DataFrame(
        [
            {
                "task": "arith",
                "cell": cell,
                "state": "finished",
                "valid": v,
                "test": v,
                "direction": "maximize",
                "metric": "accuracy",
                "start_time": i,
                "run_id": f"{cell}{i}",
            }
            for cell, values in tests.items()
            for i, v in enumerate(values)
        ],
        columns=["task", "cell", "state", "valid", "test", "direction", "start_time", "run_id"],
    )
    counting = pd.DataFrame(
        [
            {
                "state": "finished",
                "task.language": "anbn",
                "cell": cell,
                "cell.kind": cell,
                "task.n_train": 10.0,
                "test_counting_limit": limit,
                "test_generalisation_limit": limit,
                "test_strict_limit": 0.0,
            }
            for cell, found in limits.items()
            for limit in found
        ],
        columns=["state", "task.language", "cell", "cell.kind", "task.n_train", *weiss.LIMITS[:3]],
    )
    best = jozefowicz.best_runs(jobs)
    return verdicts.Evidence([], 0.05, [], best, verdicts.searched(jobs), [], counting, [], jobs)


def _rows(evidence) -> tuple[dict[str, str], list[str]]:
    table, untested = verdicts.judge(evidence)
    rows = {f: v for f, v in zip(table.frame["finding"], table.frame["verdict"], strict=True)}
    return rows, untested


def _verdict(rows: dict[str, str], start: str) -> str:
    return next(v for f, v in rows.items() if f.startswith(start))


@pytest.mark.parametrize(
    "gap,expected", [(0.0, verdicts.HOLDS), (0.2, verdicts.FAILS)], ids=["close", "far"]
)
def test_competitive_is_the_best_quarter_not_significantly_worse(gap, expected):
    spread = list(np.linspace(0.5, 0.9, 20))
    tests = {
        "gru": spread,
        "lstm": spread,
        "mingru": [v - gap for v in spread],
        "minlstm": spread,
    }
    rows, _ = _rows(_evidence(tests, {}))
    assert _verdict(rows, COMPETITIVE) == expected
    few = {cell: values[:5] for cell, values in tests.items()}
    assert _verdict(_rows(_evidence(few, {}))[0], COMPETITIVE) == (
        verdicts.FAILS if gap else verdicts.TOO_FEW
    )


def test_a_finished_counting_grid_is_not_labelled_with_the_unfinished_search():
    """modern's counting grid can be complete while its search is not: the counting rows are
    evidence as they stand; the search's rows say how far it got; smoke labels every row."""
    spread = list(np.linspace(0.5, 0.9, 20))
    evidence = _evidence({"gru": spread, "mingru": spread, "lstm": spread, "minlstm": spread},
                         {"lstm": [300.0] * 3, "slstm": [300.0] * 3})  # fmt: skip
    partial = measure("modern", pd.DataFrame({"study": [""], "state": ["finished"]}))
    rows, _ = _rows(dataclasses.replace(evidence, scale=partial))
    assert _verdict(rows, COUNTS) == verdicts.HOLDS
    assert _verdict(rows, COMPETITIVE) == f"partial (0 of 360 trials): {verdicts.HOLDS}"
    smoke = measure("modern_smoke", pd.DataFrame({"study": ["s"], "state": ["finished"],
                                                  "trainer.max_epochs": [2.0]}))  # fmt: skip
    rows, _ = _rows(dataclasses.replace(evidence, scale=smoke))
    assert _verdict(rows, COUNTS) == f"at smoke scale: {verdicts.HOLDS}"


def test_a_diverged_draw_counts_toward_a_search_of_twenty():
    """A search of 20 trials with one diverged has searched 20 draws: its best is read (a
    crashed or killed run has not, and leaves the gate short)."""
    spread = list(np.linspace(0.5, 0.9, 20))
    evidence = _evidence({"lstm": spread, "lstm_b": [v + 0.05 for v in spread]}, {})
    jobs = evidence.jobs.copy()
    for state, expected in (("diverged", verdicts.HOLDS), ("failed", verdicts.TOO_FEW)):
        jobs.loc[jobs["run_id"] == "lstm_b0", ["state", "valid", "test"]] = [state, None, None]
        again = dataclasses.replace(evidence, jobs=jobs, searched=verdicts.searched(jobs))
        assert _verdict(_rows(again)[0], "LSTM-b (forget bias 1) beats") == expected, state


def test_counting_beyond_twice_the_training_range():
    rows, _ = _rows(_evidence({"lstm": [0.5]}, {"lstm": [25, 30, 12], "slstm": [21, 8, 9]}))
    assert _verdict(rows, COUNTS) == verdicts.HOLDS
    rows, _ = _rows(_evidence({"lstm": [0.5]}, {"lstm": [25, 30, 12], "slstm": [19, 8, 9]}))
    assert _verdict(rows, COUNTS) == verdicts.FAILS
    rows, _ = _rows(_evidence({"lstm": [0.5]}, {"lstm": [25], "slstm": [30]}))
    assert _verdict(rows, COUNTS) == verdicts.TOO_FEW


def test_without_their_cells_the_rows_are_not_tested():
    rows, untested = _rows(_evidence({"gru": [0.5, 0.6], "lstm": [0.4]}, {"lstm": [30, 30, 30]}))
    assert not any(f.startswith((COMPETITIVE, COUNTS)) for f in rows)
    assert sum(u.startswith((COMPETITIVE, COUNTS)) for u in untested) == 2


def test_a_tiny_modern_smoke_and_its_report(tmp_path: Path):
    """In-process jobs (one joblib job) and cells that need no C++ build keep it short."""
    quick = [
        "hydra.launcher.n_jobs=1", "tracking.log_artifacts=false", "trainer.max_epochs=1",
        "model.hidden_size=8",
    ]  # fmt: skip
    run_ablate(
        "train", "-m", "experiment=modern_smoke", "hydra.sweeper.n_jobs=1",
        "hydra.sweeper.n_trials=1", "hydra.sweeper.grid.cell=[lstm,minlstm,slstm]",
        "hydra.sweeper.grid.task=[arith]", "trainer.max_batches=2", *quick, cwd=tmp_path,
    )  # fmt: skip
    run_ablate(
        "train", "-m", "experiment=modern_counting_smoke", "cell=lstm,slstm", "task.n_train=4",
        "task.n_max=8", "task.train_repeats=2", *quick, cwd=tmp_path,
    )  # fmt: skip
    run_ablate("report", "experiment=modern_smoke", cwd=tmp_path)
    index = (tmp_path / "reports" / "modern_smoke" / "index.md").read_text()
    table = index.split("Jozefowicz Table 1: best test value per cell and task**")[1]
    header, _, *lines = table.split("\n\n")[1].splitlines()
    assert header == "| cell | arith: test accuracy | arith: paper |"  # no counting column
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert [row[0] for row in rows] == ["LSTM", "minLSTM", "sLSTM"]
    assert rows[0][2] == "0.8923" and rows[1][2] == rows[2][2] == ""  # the paper's, and none
    assert "| anbn | lstm | lstm |" in index and "| anbn | slstm | slstm |" in index  # Weiss's
    for finding in (COMPETITIVE, COUNTS):
        row = next(line for line in index.splitlines() if finding in line)
        assert row.endswith("| at smoke scale: too few trials to say |")
