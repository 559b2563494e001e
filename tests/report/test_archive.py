"""Study archives: export a real store, import it into empty stores, and get the same report;
resume a sweep from an import and get the draws an uninterrupted search makes; refuse bad
files and occupied stores in one line, writing nothing."""

from __future__ import annotations

from pathlib import Path

import optuna
import pyarrow.parquet as pq
import pytest

from ablate.report.cli import main as report_main
from tests.conftest import mlflow_runs, run_ablate
from tests.report.conftest import EXPERIMENT, isolated
from tests.sweeps import sweep, trials, write_conf


@pytest.fixture(scope="module")
def archive(store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("archive") / "runs.parquet"
    with isolated(tmp_path_factory):
        result = run_ablate(
            "archive", "export", f"experiment={EXPERIMENT}", "--out", str(out), cwd=store
        )
    assert f"-> {out}" in result.stdout
    return out


@pytest.fixture(scope="module")
def imported(archive, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("imported")
    with isolated(tmp_path_factory):
        run_ablate("archive", "import", str(archive), cwd=root)
    return root


def _report(root: Path, out: Path) -> Path:
    assert report_main([f"experiment={EXPERIMENT}", "--root", str(root), "--out", str(out)]) == 0
    return out


def test_an_imported_archive_reports_byte_identically(store, imported, tmp_path):
    original = _report(store, tmp_path / "a" / EXPERIMENT)
    again = _report(imported, tmp_path / "b" / EXPERIMENT)
    written = sorted(p.name for p in (original / "tables").iterdir())
    assert written and written == sorted(p.name for p in (again / "tables").iterdir())
    for name in written:
        assert (original / "tables" / name).read_bytes() == (
            again / "tables" / name
        ).read_bytes(), name
    assert (original / "index.md").read_text() == (again / "index.md").read_text()


def test_the_import_recreates_runs_curves_and_trials(store, imported):
    _, old_runs = mlflow_runs(store, EXPERIMENT)
    _, new_runs = mlflow_runs(imported, EXPERIMENT)
    before = {(r.info.run_name, r.info.start_time): r for r in old_runs}
    after = {(r.info.run_name, r.info.start_time): r for r in new_runs}
    assert len(after) == len(before) == len(old_runs)
    for name, run in before.items():
        twin = after[name]
        assert twin.data.params == run.data.params
        assert twin.data.metrics == run.data.metrics  # final values exact
        assert twin.info.status == run.info.status
        assert twin.info.start_time == run.info.start_time
    studies = optuna.get_all_study_names(f"sqlite:///{store / 'optuna.db'}")
    assert studies
    for name in studies:
        old = optuna.load_study(study_name=name, storage=f"sqlite:///{store / 'optuna.db'}")
        new = optuna.load_study(study_name=name, storage=f"sqlite:///{imported / 'optuna.db'}")

        def shape(study):
            return [
                (t.number, t.state, t.params, t.values, t.intermediate_values) for t in study.trials
            ]

        assert shape(new) == shape(old)


def test_a_sweep_resumed_from_an_import_draws_what_an_uninterrupted_one_does(tmp_path):
    conf = write_conf(tmp_path)
    first, moved, whole = (tmp_path / n for n in ("first", "moved", "whole"))
    for folder in (first, moved, whole):
        folder.mkdir()
    sweep(conf, first, "hydra.sweeper.n_trials=2")
    out = tmp_path / "runs.parquet"
    run_ablate("archive", "export", "experiment=default", "--out", str(out), cwd=first)
    run_ablate("archive", "import", str(out), cwd=moved)
    sweep(conf, moved, "hydra.sweeper.n_trials=4")
    sweep(conf, whole, "hydra.sweeper.n_trials=4")
    resumed, uninterrupted = trials(moved), trials(whole)
    assert [t.number for t in resumed] == [0, 1, 2, 3]
    assert [t.params for t in resumed] == [t.params for t in uninterrupted]
    assert [t.values for t in resumed] == [t.values for t in uninterrupted]
    _, runs = mlflow_runs(moved)
    parents = [r for r in runs if r.data.tags.get("ablate.kind") == "study"]
    assert len(parents) == 1  # the resumed sweep found the imported parent run


def _truncated(archive: Path, tmp_path: Path) -> Path:
    path = tmp_path / "truncated.parquet"
    data = archive.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _random(archive: Path, tmp_path: Path) -> Path:
    path = tmp_path / "random.parquet"
    path.write_bytes(bytes(range(256)) * 64)
    return path


def _foreign(archive: Path, tmp_path: Path) -> Path:
    path = tmp_path / "foreign.parquet"
    table = pq.read_table(archive).replace_schema_metadata({})
    pq.write_table(table, path)
    return path


def _missing(archive: Path, tmp_path: Path) -> Path:
    return tmp_path / "nowhere.parquet"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_truncated, "not a readable parquet file"),
        (_random, "not a readable parquet file"),
        (_foreign, "not an ablate archive"),
        (_missing, "no such file"),
    ],
)
def test_a_bad_archive_is_one_line_and_writes_nothing(archive, tmp_path, make, message):
    bad = make(archive, tmp_path)
    root = tmp_path / "stores"
    root.mkdir()
    result = run_ablate("archive", "import", str(bad), cwd=root, check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and str(bad) in lines[0], result.stderr
    assert list(root.iterdir()) == []  # no store created


def test_an_import_into_occupied_stores_is_refused_and_changes_nothing(archive, imported):
    before = (imported / "mlflow.db").read_bytes(), (imported / "optuna.db").read_bytes()
    result = run_ablate("archive", "import", str(archive), cwd=imported, check=False)
    assert result.returncode == 1
    assert "already has runs" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert ((imported / "mlflow.db").read_bytes(), (imported / "optuna.db").read_bytes()) == before
