"""The report's parts on hand-made numbers: statistics, run states, table formats, names."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ablate.report.runs import state_of
from ablate.report.stats import best_fraction, holm, welch
from ablate.report.store import mlflow_experiment_name
from ablate.report.tables import Table, cell_text, latex, markdown, write


def test_welch_is_scipys_and_undefined_below_two_values():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 7), rng.normal(0.5, 3, 11)
    assert welch(a, b) == stats.ttest_ind(a, b, equal_var=False).pvalue
    assert math.isnan(welch([1.0], b))
    assert math.isnan(welch([1.0, 1.0], [2.0, 2.0]))


def test_holm_steps_down_and_keeps_missing_tests_missing():
    adjusted = holm([0.01, 0.04, 0.03, math.nan])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(adjusted[3])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("higher,expected", [(False, [0.1, 0.15]), (True, [0.9, 0.85])])
def test_best_fraction_is_the_best_tenth_by_validation_rounded_up(higher, expected):
    valid = [0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.15, 0.85]
    frame = pd.DataFrame(
        {"valid": valid, "start_time": range(11), "run_id": [f"r{i}" for i in range(11)]}
    )
    assert list(best_fraction(frame, 0.1, higher)["valid"]) == expected


@pytest.mark.parametrize(
    "status,tags,state",
    [
        ("FINISHED", {}, "finished"),
        ("KILLED", {"ablate.pruned": "true"}, "pruned"),
        ("KILLED", {"failure_reason": "interrupted (KeyboardInterrupt)"}, "killed"),
        ("FAILED", {"failure_reason": "training loss became nan at epoch 3, batch 1"}, "diverged"),
        ("FAILED", {"failure_reason": "training loss became inf at epoch 1, batch 9"}, "diverged"),
        ("FAILED", {"failure_reason": "RuntimeError: out of memory"}, "failed"),
        ("RUNNING", {}, "running"),
    ],
)
def test_run_states(status, tags, state):
    assert state_of(status, tags) == state


def test_cells_have_fixed_formats():
    assert [cell_text(v) for v in (math.nan, None, 3, 3.0, 0.123456, 1234567.0, True, "a")] == [
        "", "", "3", "3", "0.1235", "1234567", "yes", "a",
    ]  # fmt: skip
    assert cell_text(np.float64(2.5e-7)) == "2.5e-07"


def test_markdown_latex_and_csv(tmp_path):
    frame = pd.DataFrame({"cell": ["a|b", "lstm_b"], "p (%)": [0.5, math.nan]})
    t = Table("demo", "A & B", frame, note="read me")
    assert markdown(t).splitlines() == [
        "| cell | p (%) |",
        "| :--- | ---: |",
        "| a\\|b | 0.5 |",
        "| lstm_b |  |",
    ]
    tex = latex(t)
    assert r"\caption{A \& B}" in tex and r"p (\%)" in tex
    assert r"a\textbar{}b & 0.5 \\" in tex and r"lstm\_b &  \\" in tex
    paths = write(t, tmp_path)
    assert paths["csv"].read_text() == "cell,p (%)\na|b,0.5\nlstm_b,\n"
    assert paths["md"].read_text().startswith("### A & B\n\n| cell |")


def test_experiment_names_come_from_the_experiment_files():
    assert mlflow_experiment_name("greff2017_smoke") == "greff2017_smoke"
    assert mlflow_experiment_name("some_mlflow_experiment") == "some_mlflow_experiment"


def _history(spike: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three runs' training losses over 10 epochs, the third blowing up at epoch 9 to spike."""
    best = pd.DataFrame({"run_id": ["a", "b", "c"], "cell": ["lstm", "gru", "indrnn"]})
    rows = []
    for k, run in enumerate(best["run_id"]):
        for step in range(1, 11):
            value = 3.0 - 0.1 * step + 0.05 * k
            rows.append({"run_id": run, "key": "train_loss", "step": step, "value": value})
    rows[-2]["value"] = spike
    return best, pd.DataFrame(rows)


def test_a_curve_that_blows_up_is_cut_off_the_axis_and_named():
    import matplotlib.pyplot as plt

    from ablate.report.figures import _cut

    best, history = _history(2.5e11)
    fig, ax = plt.subplots()
    note = _cut(ax, "train_loss", best, history)
    low, high = ax.get_ylim()
    plt.close(fig)
    assert note == "(off the axis: indrnn 2.5e+11)"
    assert 1.5 < low < 2.0 and 3.0 < high < 5.0  # the other runs fill most of the axis

    best, history = _history(3.5)  # an ordinary epoch: nothing cut, matplotlib's own range
    fig, ax = plt.subplots()
    assert _cut(ax, "train_loss", best, history) == ""
    assert ax.get_autoscaley_on()
    plt.close(fig)


def test_a_cut_names_the_three_highest_runs_and_counts_the_rest():
    import matplotlib.pyplot as plt

    from ablate.report.figures import _cut

    cells = ["lstm", "gru", "tanh", "mut1", "mut2", "mut3"]
    best = pd.DataFrame({"run_id": cells, "cell": cells})
    history = pd.DataFrame(
        {"run_id": run, "key": "valid_nll", "step": step, "value": 9.0 + 0.01 * step}
        for run in cells
        for step in range(1, 31)
    )
    first = history["step"] == 1  # every run starts far above where it settles
    history.loc[first, "value"] = 20.0 + 10 * np.arange(len(cells))
    fig, ax = plt.subplots()
    note = _cut(ax, "valid_nll", best, history)
    plt.close(fig)
    assert note == "(off the axis: mut3 70, mut2 60, mut1 50 and 3 more)"
