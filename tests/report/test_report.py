"""`ablate report` end to end, on the small real store of conftest.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import mlflow
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ablate.errors import AblateError
from ablate.report.cli import main
from ablate.report.verdicts import FAILS, HOLDS, TOO_FEW
from tests.conftest import mlflow_runs, run_ablate
from tests.report.conftest import EXPERIMENT

TABLES = (
    "runs",
    "greff_fig3",
    "jozefowicz_table1",
    "fanova_importance",
    "fanova_interaction",
    "weiss_limits",
    "verdicts",
)
FIGURES = (
    "greff_fig3_digits",
    "fanova_importance",
    "fanova_marginals_digits",
    "fanova_interaction_digits",
    "curves_digits",
    "curves_counting",
    "weiss_limits",
)


def table(report: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(report / "tables" / f"{name}.csv")


def test_every_table_and_figure_is_written_and_linked(report):
    index = (report / "index.md").read_text()
    for name in TABLES:
        for ext in ("md", "tex", "csv"):
            assert (report / "tables" / f"{name}.{ext}").stat().st_size > 0
            assert f"tables/{name}.{ext}" in index
    for name in FIGURES:
        assert (report / "figures" / f"{name}.pdf").read_bytes().startswith(b"%PDF")
        assert f"figures/{name}.png" in index
    assert sorted(p.stem for p in (report / "figures").glob("*.png")) == sorted(FIGURES)
    assert "| finding | paper | measured | verdict |" in index


def test_tables_have_the_expected_rows(report):
    runs = table(report, "runs").set_index(["task", "cell"])
    assert sorted(runs.index) == [
        ("counting", "gru"),
        ("counting", "lstm"),
        ("digits", "linear"),
        ("digits", "nfg"),
        ("digits", "vanilla"),
    ]
    assert runs.loc[("digits", "vanilla"), "finished"] == 6
    assert runs.loc[("digits", "linear"), "diverged"] == 1

    fig3 = table(report, "greff_fig3")
    assert list(fig3["cell"]) == ["vanilla", "nfg", "linear"]  # reference first
    assert set(fig3["task"]) == {"digits"}  # counting is Weiss's, not a box plot
    assert np.isnan(fig3.loc[0, "p (all)"])  # the reference is not tested against itself
    assert fig3.loc[2, "finished"] == 0 and np.isnan(fig3.loc[2, "mean (all)"])
    assert list(fig3["n (best)"]) == [1, 1, 0]  # ceil(10% of 6)

    best = table(report, "jozefowicz_table1")
    assert list(best["cell"]) == ["vanilla", "nfg"]
    assert list(best.columns) == ["cell", "digits: test error"]  # counting: its limits, below

    importance = table(report, "fanova_importance")
    assert sorted(importance["hyperparameter"]) == [
        "model.hidden_size",
        "model.input_noise",
        "optim.lr",
        "optim.momentum",
    ]
    assert (
        "1 - log-uniform"
        in importance.set_index("hyperparameter").loc["optim.momentum", "sampled as"]
    )
    assert list(table(report, "fanova_interaction")["task"]) == ["digits"]
    assert list(table(report, "weiss_limits")["cell"]) == ["lstm", "gru"]

    verdicts = table(report, "verdicts")
    assert set(verdicts["verdict"]) <= {HOLDS, FAILS, TOO_FEW}
    assert {"Greff 2017", "Weiss 2018"} <= set(verdicts["paper"])
    # 12 trials are far too few for a fANOVA verdict, whatever they show
    lr = verdicts[verdicts["finding"].str.startswith("Learning rate")]
    assert list(lr["verdict"]) == [TOO_FEW]


def test_welch_p_values_are_scipys_on_the_same_numbers(report, store):
    _, runs = mlflow_runs(store, EXPERIMENT)
    test = {
        cell: [
            r.data.metrics["test_error"]
            for r in runs
            if r.data.tags.get("cell") == cell and r.info.status == "FINISHED"
        ]
        for cell in ("vanilla", "nfg")
    }
    assert len(test["vanilla"]) == len(test["nfg"]) == 6
    expected = stats.ttest_ind(test["nfg"], test["vanilla"], equal_var=False).pvalue
    fig3 = table(report, "greff_fig3").set_index("cell")
    assert fig3.loc["nfg", "p (all)"] == pytest.approx(expected, rel=1e-8)
    assert fig3.loc["nfg", "mean (all)"] == pytest.approx(np.mean(test["nfg"]), rel=1e-8)


def test_fanova_importances_are_non_negative_and_sum_to_one(report):
    importance = table(report, "fanova_importance")["digits"]
    assert (importance >= 0).all()
    assert importance.sum() == pytest.approx(1.0, abs=1e-6)


def test_figures_are_non_empty_pngs(report):
    for path in (report / "figures").glob("*.png"):
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), path.name
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[0] > 200 and pixels.shape[1] > 200, path.name
        assert pixels[..., :3].std() > 0.01, f"{path.name} is blank"


def test_the_same_store_gives_byte_identical_tables(report, store, tmp_path):
    again = tmp_path / EXPERIMENT  # the same folder name: the index names it
    assert main([f"experiment={EXPERIMENT}", "--root", str(store), "--out", str(again)]) == 0
    written = sorted(p.relative_to(report) for p in (report / "tables").iterdir())
    assert written == sorted(p.relative_to(again) for p in (again / "tables").iterdir())
    for name in written:
        assert (report / name).read_bytes() == (again / name).read_bytes(), name
    assert (report / "index.md").read_text() == (again / "index.md").read_text()


def test_filter_and_holm(store, tmp_path, capsys):
    out = tmp_path / "filtered"
    main(
        [
            "--experiment",
            EXPERIMENT,
            "--filter",
            "tags.task = 'digits' and tags.cell != 'linear'",
            "--holm",
            "--root",
            str(store),
            "--out",
            str(out),
        ]
    )
    progress = capsys.readouterr().out
    for stage in ("runs", "Greff Fig. 3", "Jozefowicz Table 1", "hyperparameters", "done"):
        assert f"report: {stage}:" in progress
    assert list(table(out, "runs")["cell"]) == ["nfg", "vanilla"]
    assert "Holm-corrected" in (out / "tables" / "greff_fig3.md").read_text()
    assert not (out / "tables" / "weiss_limits.csv").exists()


def test_an_unknown_experiment_is_a_clear_error(store):
    result = run_ablate("report", "experiment=nope", cwd=store, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("ablate report: error: no MLflow experiment 'nope' in sqlite")
    assert f"experiments there: Default, {EXPERIMENT}" in result.stderr


def test_an_empty_experiment_is_a_clear_error(tmp_path):
    mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").create_experiment("empty")
    with pytest.raises(AblateError, match="no job runs in MLflow experiment empty at sqlite"):
        main(["experiment=empty", "--root", str(tmp_path)])
    assert not (tmp_path / "reports").exists()


def test_no_store_is_a_clear_error_and_creates_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AblateError, match="no MLflow store at .*mlflow.db"):
        main(["experiment=greff2017_smoke"])
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_server_is_a_clear_error(tmp_path):
    with pytest.raises(AblateError, match="tracking store http://127.0.0.1:9 is unreachable"):
        main(["experiment=x", "--uri", "http://127.0.0.1:9", "--out", str(tmp_path / "r")])


@pytest.mark.parametrize(
    "argv,message",
    [
        (["greff2017"], "expected experiment=NAME"),
        (["experiment=a", "--experiment", "b"], "experiment given twice"),
        (["experiment=a", "--alpha", "1.5"], "--alpha must be in"),
    ],
)
def test_bad_arguments_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def _without_root_powers() -> list[str]:
    """A command prefix under which file permissions apply, even to root (whose DAC override
    the bounding set drops for the child)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions cannot be enforced")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


def test_an_unwritable_report_folder_is_one_line(store, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    command = [*_without_root_powers(), sys.executable, "-m", "ablate", "report"]
    result = subprocess.run(
        [*command, f"experiment={EXPERIMENT}", "--root", str(store), "--out", str(locked / "r")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [f"ablate report: error: cannot write into {locked / 'r'}: Permission denied"]
    assert list(locked.iterdir()) == []
