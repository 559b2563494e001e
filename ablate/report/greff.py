"""Greff et al.'s Figure 3: per task, the test metric of every variant over all trials and over
the best 10% by validation, each variant tested against the reference (vanilla) with Welch's
t-test.

Only finished runs have a test value, so only they enter boxes and tests; diverged and pruned
trials are counted beside them (and diverged ones drawn at the top of the all-trials panel),
never given a made-up value that would decide a mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ablate.report.paper import GREFF_CELLS, JOZEFOWICZ_CELLS
from ablate.report.runs import STATES
from ablate.report.stats import best_fraction, holm, welch
from ablate.report.tables import Table

BEST_FRACTION = 0.1
WEISS_TASK = "counting"  # reported by limits, not by boxes (see weiss.py)


@dataclass(frozen=True)
class Panel:
    """One box-plot panel: test values per cell, and each cell's p-value against the
    reference (NaN for the reference and where the test is undefined)."""

    label: str
    values: dict[str, np.ndarray]
    pvalues: dict[str, float]


@dataclass(frozen=True)
class Comparison:
    task: str
    metric: str
    higher_is_better: bool
    reference: str
    cells: list[str]  # the reference first, then the papers' order
    all_trials: Panel
    best: Panel
    counts: pd.DataFrame  # per cell: trials, finished, pruned, diverged, failed
    parameters: dict[str, float]  # median parameter count of the finished trials

    def significant(self, panel: Panel, cell: str, alpha: float) -> str:
        """'better', 'worse' or '' (not significant, or no test) against the reference."""
        p = panel.pvalues.get(cell, np.nan)
        if not p < alpha:
            return ""
        diff = np.mean(panel.values[cell]) - np.mean(panel.values[self.reference])
        return "better" if (diff > 0) == self.higher_is_better else "worse"


def cell_order(cells: list[str], reference: str | None = None) -> list[str]:
    """The papers' order (Greff's variants, then Jozefowicz's cells), others by name; the
    reference first."""
    known = [*GREFF_CELLS, *JOZEFOWICZ_CELLS]
    ordered = sorted(set(cells), key=lambda c: (known.index(c) if c in known else len(known), c))
    if reference in ordered:
        ordered.remove(reference)
        ordered.insert(0, reference)
    return ordered


def pick_reference(cells: list[str], wanted: str | None) -> str:
    """The cell every other is compared with: as asked, else vanilla, else lstm, else the
    first in the papers' order."""
    for name in (wanted, "vanilla", "lstm"):
        if name and name in cells:
            return name
    return cell_order(cells)[0]


def counts(jobs: pd.DataFrame) -> pd.DataFrame:
    """Runs per (task, cell) by how they ended."""
    table = (
        jobs.groupby(["task", "cell", "state"])
        .size()
        .unstack("state", fill_value=0)
        .reindex(columns=list(STATES), fill_value=0)
        .astype(int)
    )
    table.insert(0, "trials", table.sum(axis=1))
    return table


def _panel(label: str, values: dict[str, np.ndarray], reference: str, use_holm: bool) -> Panel:
    others = [c for c in values if c != reference]
    raw = [welch(values[c], values[reference]) for c in others]
    adjusted = holm(raw) if use_holm else raw
    pvalues = {reference: np.nan, **dict(zip(others, adjusted, strict=True))}
    return Panel(label, values, pvalues)


def compare(jobs: pd.DataFrame, task: str, reference: str | None, use_holm: bool) -> Comparison:
    rows = jobs[jobs["task"] == task]
    higher = bool((rows["direction"] == "maximize").any())
    ref = pick_reference(sorted(rows["cell"].unique()), reference)
    cells = cell_order(list(rows["cell"].unique()), ref)
    finished = rows[rows["state"] == "finished"]
    every: dict[str, np.ndarray] = {}
    best: dict[str, np.ndarray] = {}
    parameters: dict[str, float] = {}
    for cell in cells:
        mine = finished[finished["cell"] == cell]
        every[cell] = mine["test"].to_numpy(dtype=float)
        best[cell] = best_fraction(mine, BEST_FRACTION, higher)["test"].to_numpy(dtype=float)
        parameters[cell] = float(np.round(mine["num_parameters"].median())) if len(mine) else np.nan
    by_cell = counts(rows).loc[task].reindex(cells, fill_value=0)
    return Comparison(
        task=task,
        metric=str(rows["metric"].iloc[0]),
        higher_is_better=higher,
        reference=ref,
        cells=cells,
        all_trials=_panel("all trials", every, ref, use_holm),
        best=_panel(f"best {BEST_FRACTION:.0%} by validation", best, ref, use_holm),
        counts=by_cell,
        parameters=parameters,
    )


def comparisons(jobs: pd.DataFrame, reference: str | None, use_holm: bool) -> list[Comparison]:
    tasks = sorted(t for t in jobs["task"].unique() if t != WEISS_TASK)
    return [compare(jobs, task, reference, use_holm) for task in tasks]


def _stat(values: np.ndarray, fn: str) -> float:
    return float(getattr(np, fn)(values)) if len(values) else np.nan


def table(found: list[Comparison], alpha: float, use_holm: bool) -> Table:
    rows = []
    for c in found:
        for cell in c.cells:
            n = c.counts.loc[cell]
            rows.append(
                {
                    "task": c.task,
                    "metric": f"test {c.metric}",
                    "cell": cell,
                    "trials": int(n["trials"]),
                    "finished": int(n["finished"]),
                    "diverged": int(n["diverged"]),
                    "pruned": int(n["pruned"]),
                    "mean (all)": _stat(c.all_trials.values[cell], "mean"),
                    "median (all)": _stat(c.all_trials.values[cell], "median"),
                    "p (all)": c.all_trials.pvalues[cell],
                    "vs ref (all)": c.significant(c.all_trials, cell, alpha),
                    "n (best)": len(c.best.values[cell]),
                    "mean (best)": _stat(c.best.values[cell], "mean"),
                    "p (best)": c.best.pvalues[cell],
                    "vs ref (best)": c.significant(c.best, cell, alpha),
                    "parameters": c.parameters[cell],
                }
            )
    correction = (
        "Holm-corrected over the variants of each task and panel"
        if use_holm
        else "uncorrected (--holm corrects them)"
    )
    note = (
        f"Welch's t-test of each cell's test values against the reference cell (listed first "
        f"per task; its p is blank); p-values {correction}; 'vs ref' marks p < {alpha:g}. "
        f"'best' = the best {BEST_FRACTION:.0%} of finished trials by validation value (at "
        "least one). Only finished runs have test values; diverged and pruned runs are counted, "
        "not scored. parameters: median over finished trials."
    )
    return Table(
        "greff_fig3",
        "Greff Fig. 3: test metric per variant vs the reference",
        pd.DataFrame(rows),
        note,
    )
