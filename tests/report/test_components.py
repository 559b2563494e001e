"""A real component search, through the real CLI: `ablate train -m experiment=components_smoke`
shrunk to a few seconds, then `ablate report`, which must answer which component matters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution

from ablate.report import components, hyper
from tests.conftest import mlflow_runs, run_ablate

SMOKE = [
    "experiment=components_smoke",
    "task=digits",
    "hydra.sweeper.n_trials=10",
    "trainer.max_epochs=1",
    "tracking.log_artifacts=false",
]


def test_component_search_and_its_report(tmp_path: Path):
    run_ablate("train", "-m", *SMOKE, cwd=tmp_path)
    _, found = mlflow_runs(tmp_path, "components_smoke")
    runs = [r for r in found if r.data.tags.get("ablate.kind") == "job"]
    assert len(runs) == 10
    for run in runs:
        tags, params = run.data.tags, run.data.params
        assert tags["cell.components"] and run.info.run_name.startswith(tags["cell.components"])
        assert params["components"] and "cell.gates" in params and "cell.coupled" in params
    assert len({r.data.params["components"] for r in runs}) > 5

    # A named cell's run beside the search (one plain job into the same study): it alone is
    # Greff's and Jozefowicz's per-cell evidence, and vanilla, drawn only, is no reference.
    run_ablate("train", *[a for a in SMOKE if "n_trials" not in a], "cell=nfg", cwd=tmp_path)
    refused = run_ablate(
        "report", "experiment=components_smoke", "--reference", "vanilla", cwd=tmp_path, check=False
    )
    assert refused.returncode != 0 and "--reference vanilla: no run of that cell" in refused.stderr

    out = run_ablate("report", "experiment=components_smoke", cwd=tmp_path).stdout
    assert "components" in out
    report = tmp_path / "reports" / "components_smoke"
    index = (report / "index.md").read_text()
    assert "## 3b. The cell's components" in index
    # Each run drew its own cell: none is labelled with the grid's preset (vanilla) as if it
    # were one, and Greff's and Jozefowicz's per-cell sections leave them out.
    assert "| digits | components searched | 10 |" in index and "| digits | nfg | 1 |" in index
    assert "1 cells named and" in index and "cells drawn by a component search" in index
    assert index.count("The component search's 10 runs are not compared here") == 2
    table1 = (report / "tables" / "jozefowicz_table1.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in table1[1:]] == ["nfg"]
    assert "best quarter" in (report / "tables" / "component_importance.csv").read_text()
    assert (report / "figures" / "curves_digits.png").is_file()
    assert "fANOVA: importance of each component" in index and "forget gate" in index
    assert "Largest pairwise interactions between components" in index
    assert "The best cells found against vanilla" in index
    assert (report / "figures" / "component_marginals_digits.png").stat().st_size > 10_000
    for finding in ("the output activation are the most important", "Coupling the gates"):
        row = next(line for line in index.splitlines() if finding in line)
        assert "| at smoke scale: " in row


def test_the_best_quarter_counts_a_component_that_matters_only_where_training_works():
    """A learning rate below 1e-3 trains nothing, and how badly it fails depends on how low it
    is; the forget gate matters only among the runs that train. Over the whole space the
    failures' differences are nearly all the variance; in the best quarter they count for
    nothing and the gate takes its share."""
    rng = np.random.default_rng(0)
    lr = hyper.Dim("optim.lr", FloatDistribution(1e-6, 1e-2, log=True), "identity")
    gate = hyper.Dim("cell.gates.forget", CategoricalDistribution([True, False]), "identity")
    dims = [gate, lr]
    trials, values = [], []
    for _ in range(200):
        exponent, forget = rng.uniform(-6, -2), bool(rng.integers(2))
        trains = exponent > -3
        values.append((0.3 - 0.2 * forget if trains else 5 - 3 * exponent) + rng.normal(0, 0.01))
        trials.append(
            optuna.trial.create_trial(
                params={"optim.lr": float(10**exponent), "cell.gates.forget": forget},
                distributions={d.key: d.distribution for d in dims},
                value=0.0,
            )
        )
    y = np.array(values)
    capped = components.good_region(y, higher=False)
    assert capped.max() == np.quantile(y, components.GOOD_QUANTILE) and capped.min() == y.min()
    assert np.array_equal(components.good_region(-y, higher=True), -capped)
    everywhere = hyper.fanova_importances(dims, trials, y, seed=0)
    good = hyper.fanova_importances(dims, trials, capped, seed=0)
    assert everywhere["cell.gates.forget"] < 0.01
    assert good["cell.gates.forget"] > 0.1


def test_the_best_quarter_is_not_read_off_a_few_trials():
    lr = hyper.Dim("optim.lr", FloatDistribution(1e-6, 1e-2, log=True), "identity")
    trials = [
        optuna.trial.create_trial(
            params={"optim.lr": 10.0**-k}, distributions={"optim.lr": lr.distribution}, value=0.0
        )
        for k in np.linspace(2, 6, 40)
    ]
    y = np.ones(40)
    y[:3] -= [0.5, 1e-9, 0.2]  # three values beat the rest: too few to decompose
    assert components.good_importances([lr], trials, y, higher=False, seed=0) == {}
    y[:20] -= np.linspace(0.1, 0.5, 20)  # twenty do
    assert components.good_importances([lr], trials, y, higher=False, seed=0)["optim.lr"] == 1.0
