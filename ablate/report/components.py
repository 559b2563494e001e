"""Which component of the cell matters: the analysis of a component search
(:mod:`ablate.search.components`), per task, on the same trials and test values as the
hyperparameter analysis (:mod:`ablate.report.hyper`), whose fANOVA importances it reads.

Beside the importances over the whole search space, the same fANOVA on the test values
capped at the boundary of the best quarter (everything worse counts as equally bad): which
component matters *among the settings that train*. A random search whose learning rates
mostly fail gives the learning rate most of the variance there is; capping removes the
difference between failures, as Hutter et al. 2014 (fANOVA) cap the forest's predictions to
quantify importance in good regions (here the values are capped before the forest is fitted).

From hyper's seeded random forest: each component's marginal (the predicted test metric at
each of its choices, averaged uniformly over the other components and the hyperparameters),
the pairwise interactions between components, and each cell's predicted test metric averaged
over the hyperparameters, which puts the best cells found and vanilla on one footing although
each trial drew its own hyperparameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
from optuna.storages import BaseStorage

from ablate.cells.presets import preset
from ablate.report import hyper
from ablate.report.stats import welch
from ablate.report.tables import Table
from ablate.search import components
from ablate.search.trial import MLFLOW_RUN_ATTR

REFERENCE = "vanilla"
BEST_CELLS = 5
GOOD_QUANTILE = 0.25  # the good region: the best quarter of the task's test values
LABEL = {
    "cell.gates.input": "input gate",
    "cell.gates.forget": "forget gate",
    "cell.gates.output": "output gate",
    "cell.peepholes.input": "input peephole",
    "cell.peepholes.forget": "forget peephole",
    "cell.peepholes.output": "output peephole",
    "cell.block_activation": "block activation g",
    "cell.output_activation": "output activation h",
    "cell.coupled": "coupling (CIFG)",
    "cell.full_gate_recurrence": "full gate recurrence",
    "cell.forget_bias": "forget bias",
    "cell.reset": "reset position",
}


def label(key: str) -> str:
    if key.startswith("cell.sources."):
        return f"{key.rsplit('.', 1)[1]} sources"
    return LABEL.get(key, hyper.LABEL.get(key, key))


@dataclass(frozen=True)
class Choice:
    value: object
    mean: float  # predicted test metric, averaged over everything else
    std: float  # between the trees


@dataclass(frozen=True)
class Analysis:
    task: str
    metric: str
    higher_is_better: bool
    trials: int
    settings: int
    dims: list[hyper.Dim]  # the components searched
    importances: dict[str, float]  # fANOVA: components and hyperparameters
    marginals: dict[str, list[Choice]] = field(default_factory=dict)
    pairs: list[tuple[str, str, float]] = field(default_factory=list)  # largest first
    cells: pd.DataFrame = field(default_factory=pd.DataFrame)  # the best cells, then vanilla
    observed: pd.DataFrame = field(default_factory=pd.DataFrame)  # trial, components, test
    good: dict[str, float] = field(default_factory=dict)  # fANOVA in the best quarter


def searched(found: hyper.Analysis) -> bool:
    return any(components.is_component(d.key) for d in found.dims)


def good_region(y: np.ndarray, higher: bool) -> np.ndarray:
    """The values capped at the boundary of the best GOOD_QUANTILE: the good ones as they are,
    every worse one equal to the boundary."""
    if higher:
        return np.maximum(y, np.quantile(y, 1 - GOOD_QUANTILE))
    return np.minimum(y, np.quantile(y, GOOD_QUANTILE))


def analyse(storage: BaseStorage, jobs: pd.DataFrame, found: hyper.Analysis, seed: int) -> Analysis:
    """``found``: hyper's analysis of the task, which holds the fANOVA importances."""
    rows = jobs[jobs["task"] == found.task]
    trials, _, _ = hyper.study_trials(storage, sorted(n for n in rows["study"].unique() if n))
    trials, y, _ = hyper.values_of(trials, rows)
    dims = found.dims
    x = hyper.matrix(dims, trials)
    forest = hyper.fit_forest(x, y, seed)
    base = hyper.base_design(dims, seed)
    mine = [i for i, d in enumerate(dims) if components.is_component(d.key)]
    marginals = {}
    for i in mine:
        d = dims[i]
        assert d.choices is not None
        mean, std = hyper.marginal(forest, base, i, np.arange(len(d.choices), dtype=float))
        marginals[d.key] = [Choice(c, m, s) for c, m, s in zip(d.choices, mean, std, strict=True)]
    pairs = []
    for i, j in combinations(mine, 2):
        grids = [np.arange(len(dims[k].choices or ()), dtype=float) for k in (i, j)]
        *_, joint = hyper.pair_effects(forest, base, (i, grids[0]), (j, grids[1]))
        pairs.append((dims[i].key, dims[j].key, joint))
    pairs.sort(key=lambda p: -p[2] if not math.isnan(p[2]) else 0.0)
    runs = rows.set_index("run_id")
    observed = pd.DataFrame(
        [
            {
                **{dims[i].key: t.params[dims[i].key] for i in mine},
                "cell": runs.loc[t.system_attrs[MLFLOW_RUN_ATTR], "components"],
                "valid": runs.loc[t.system_attrs[MLFLOW_RUN_ATTR], "valid"],
                "test": value,
            }
            for t, value in zip(trials, y, strict=True)
        ]
    )
    return Analysis(
        found.task,
        found.metric,
        found.higher_is_better,
        found.trials,
        found.settings,
        [dims[i] for i in mine],
        found.importances,
        marginals,
        pairs,
        _cells(forest, base, dims, mine, observed, found.higher_is_better),
        observed,
        good_importances(dims, trials, y, found.higher_is_better, seed),
    )


def good_importances(
    dims: list[hyper.Dim], trials: list, y: np.ndarray, higher: bool, seed: int
) -> dict[str, float]:
    """fANOVA on the values capped at the best quarter's boundary; none where fewer than
    hyper.MIN_TRIALS values lie beyond it (a decomposition of one or two trials' differences
    would read as confident importances)."""
    capped = good_region(y, higher)
    boundary = capped.min() if higher else capped.max()
    if np.count_nonzero(capped != boundary) < hyper.MIN_TRIALS:
        return {}
    try:
        return hyper.fanova_importances(dims, trials, capped, seed)
    except RuntimeError:  # Optuna's fANOVA: no tree split (differences below its resolution)
        return {}


def _cells(
    forest: object,
    base: np.ndarray,
    dims: list[hyper.Dim],
    mine: list[int],
    observed: pd.DataFrame,
    higher: bool,
) -> pd.DataFrame:
    """The best cells by their best trial (chosen by validation), then vanilla; each with
    its predicted test metric averaged over the hyperparameters."""

    def predicted(values: dict[str, object]) -> float:
        design = base.copy()
        for i in mine:
            choices = dims[i].choices or ()
            if values[dims[i].key] not in choices:
                return math.nan
            design[:, i] = choices.index(values[dims[i].key])
        return float(forest.predict(design).mean())  # type: ignore[attr-defined]

    keys = [dims[i].key for i in mine]
    rows = []
    for cell, group in observed.groupby("cell", sort=True):
        best = group.sort_values("valid", ascending=not higher, kind="mergesort").iloc[0]
        rows.append(
            {
                "cell": cell,
                "trials": len(group),
                "best valid": best["valid"],
                "its test": best["test"],
                "predicted test": predicted(group.iloc[0][keys].to_dict()),
            }
        )
    frame = pd.DataFrame(
        rows, columns=["cell", "trials", "best valid", "its test", "predicted test"]
    )
    frame = frame.sort_values("best valid", ascending=not higher, kind="mergesort")
    top = frame[frame["cell"] != REFERENCE].head(BEST_CELLS)
    reference = frame[frame["cell"] == REFERENCE]
    if reference.empty:
        values = components.values_of(preset(REFERENCE), keys)
        reference = pd.DataFrame(
            [{"cell": REFERENCE, "trials": 0, "predicted test": predicted(values)}]
        )
    out = pd.concat([top, reference], ignore_index=True)
    vanilla = float(out["predicted test"].iloc[-1])
    out["predicted vs vanilla"] = out["predicted test"] - vanilla
    return out


def importance_table(found: list[Analysis]) -> Table:
    keys = [d.key for d in found[0].dims] if found else []
    keys += sorted({k for a in found for k in a.importances} - set(keys))
    rows = []
    for key in keys:
        row: dict[str, object] = {"component or hyperparameter": label(key)}
        for a in found:
            row[a.task] = a.importances.get(key, math.nan)
            row[f"{a.task}, best quarter"] = a.good.get(key, math.nan)
        rows.append(row)
    trials = ", ".join(f"{a.task} {a.trials}" for a in found)
    note = (
        "Fraction of the variance of the test metric each component and hyperparameter "
        "explains alone (fANOVA main effects, as in the hyperparameter table, normalised to "
        "sum to 1 per task); 'best quarter': the same with every test value worse than the "
        "best quarter's boundary set to it, so that only differences among the settings that "
        f"train count (blank: fewer than {hyper.MIN_TRIALS} values better than the boundary). "
        f"Trials analysed: {trials}."
    )
    return Table(
        "component_importance", "fANOVA: importance of each component", pd.DataFrame(rows), note
    )


def pair_table(found: list[Analysis], count: int = 5) -> Table:
    rows = [
        {"task": a.task, "components": f"{label(p)} x {label(q)}", "interaction": v}
        for a in found
        for p, q, v in a.pairs[:count]
    ]
    note = (
        "Fraction of the random forest's predicted variance (uniform over the components and "
        "hyperparameters) that each pair's interaction alone explains; the largest "
        f"{count} per task."
    )
    title = "Largest pairwise interactions between components"
    return Table("component_interactions", title, pd.DataFrame(rows), note)


def cells_table(found: list[Analysis]) -> Table:
    frames = [a.cells.assign(task=a.task) for a in found]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not frame.empty:
        frame = frame[["task", *[c for c in frame.columns if c != "task"]]]
    note = (
        f"Per task, the {BEST_CELLS} cells whose best trial (by validation) did best, then "
        f"{REFERENCE}: that trial's test value, and the forest's test value for the cell "
        "averaged over the hyperparameters (its trials each drew their own), against "
        f"{REFERENCE}'s ({REFERENCE} predicted even where it was never drawn)."
    )
    return Table("component_cells", f"The best cells found against {REFERENCE}", frame, note)


def coupling(a: Analysis) -> tuple[float, float, float, int, int] | None:
    """Observed test values of coupled against uncoupled cells that have both an input and a
    forget gate (where coupling is possible): Welch's p, the two means, the two counts."""
    need = ("cell.coupled", "cell.gates.input", "cell.gates.forget")
    frame = a.observed
    if frame.empty or "cell.coupled" not in frame:
        return None
    for key in need[1:]:
        if key in frame:
            frame = frame[frame[key].astype(bool)]
    on = frame[frame["cell.coupled"].astype(bool)]["test"].to_numpy(float)
    off = frame[~frame["cell.coupled"].astype(bool)]["test"].to_numpy(float)
    mean = [float(v.mean()) if len(v) else math.nan for v in (on, off)]
    return welch(on, off), mean[0], mean[1], len(on), len(off)
