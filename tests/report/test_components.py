"""A real component search, through the real CLI: `ablate train -m experiment=components_smoke`
shrunk to a few seconds, then `ablate report`, which must answer which component matters."""

from __future__ import annotations

from pathlib import Path

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

    out = run_ablate("report", "experiment=components_smoke", cwd=tmp_path).stdout
    assert "components" in out
    report = tmp_path / "reports" / "components_smoke"
    index = (report / "index.md").read_text()
    assert "## 3b. The cell's components" in index
    # Each run drew its own cell: none is labelled with the grid's preset (vanilla) as if it
    # were one, and Greff's and Jozefowicz's per-cell sections leave them out.
    assert "| digits | components searched | 10 |" in index
    assert "cells drawn by a component search" in index
    assert index.count("The component search's 10 runs are not compared here") == 2
    assert "greff_fig3_digits.png" not in index and "jozefowicz_table1" not in index
    assert (report / "figures" / "curves_digits.png").is_file()
    assert "fANOVA: importance of each component" in index and "forget gate" in index
    assert "Largest pairwise interactions between components" in index
    assert "The best cells found against vanilla" in index
    assert (report / "figures" / "component_marginals_digits.png").stat().st_size > 10_000
    for finding in ("the output activation are the most important", "Coupling the gates"):
        row = next(line for line in index.splitlines() if finding in line)
        assert "| at smoke scale: " in row
