"""Jozefowicz et al.'s Table 1: the best test value per (cell, task), the run chosen by its
validation value (as a search would choose it), beside the paper's numbers where our task is
the paper's, and the rank correlation between the two orderings of the cells."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ablate.report.greff import cell_order
from ablate.report.paper import CELL_LABEL, TABLE1_COLUMN, TABLE1_METRIC, table1
from ablate.report.stats import spearman
from ablate.report.tables import Table


def best_runs(jobs: pd.DataFrame, by: tuple[str, ...] = ("task", "cell")) -> pd.DataFrame:
    """Per (task, cell), or per group of ``by``, the finished run with the best validation value
    (ties: the earliest)."""
    finished = jobs[jobs["state"] == "finished"].dropna(subset=["valid"])
    picked = []
    for _, rows in finished.groupby(list(by), sort=True):
        higher = bool((rows["direction"] == "maximize").any())
        ordered = rows.sort_values(
            ["valid", "start_time", "run_id"], ascending=[not higher, True, True], kind="mergesort"
        )
        picked.append(ordered.index[0])
    return jobs.loc[picked].reset_index(drop=True)  # the jobs' columns and dtypes, even empty


@dataclass(frozen=True)
class RankAgreement:
    task: str
    cells: list[str]
    rho: float
    p: float


def _ours(best: pd.Series) -> float:
    """The selected run's test accuracy, the quantity of Table 1."""
    return float(best.get(f"test_{TABLE1_METRIC}", np.nan))


def table(best: pd.DataFrame) -> tuple[Table, list[RankAgreement]]:
    tasks = sorted(best["task"].unique())
    cells = cell_order(list(best["cell"].unique()))
    indexed = best.set_index(["task", "cell"])
    rows = []
    for cell in cells:
        row: dict[str, object] = {"cell": CELL_LABEL.get(cell, cell)}
        for task in tasks:
            found = indexed.loc[(task, cell)] if (task, cell) in indexed.index else None
            metric = str(best.loc[best["task"] == task, "metric"].iloc[0])
            row[f"{task}: test {metric}"] = float(found["test"]) if found is not None else np.nan
            if table1(cell, task) is None:
                continue
            if metric != TABLE1_METRIC:
                row[f"{task}: test {TABLE1_METRIC}"] = _ours(found) if found is not None else np.nan
            row[f"{task}: paper"] = table1(cell, task)
        rows.append(row)
    frame = pd.DataFrame(rows)
    agreements = []
    for task in tasks:
        if task not in TABLE1_COLUMN:
            continue
        matched = [
            c
            for c in cells
            if (task, c) in indexed.index
            and table1(c, task) is not None
            and not np.isnan(_ours(indexed.loc[(task, c)]))
        ]
        rho, p = spearman(
            [_ours(indexed.loc[(task, c)]) for c in matched], [table1(c, task) for c in matched]
        )
        agreements.append(RankAgreement(task, matched, rho, p))
    note = (
        "Per (cell, task) the finished run with the best validation value; its test value. "
        f"'paper' = Jozefowicz et al. 2015 Table 1 (best next-step {TABLE1_METRIC}) where our "
        "task is the paper's: arith (Arith), xml (XML), ptb (PTB, next-word accuracy); text "
        "(characters) and jsb match no column. A blank: no finished run, or no such cell in the "
        "paper (the cells of 2024)."
    )
    title = "Jozefowicz Table 1: best test value per cell and task"
    return Table("jozefowicz_table1", title, frame, note), agreements


def agreement_table(agreements: list[RankAgreement]) -> Table:
    frame = pd.DataFrame(
        [
            {"task": a.task, "cells": len(a.cells), "spearman rho": a.rho, "p": a.p}
            for a in agreements
        ],
        columns=["task", "cells", "spearman rho", "p"],
    )
    note = (
        "Spearman's rank correlation between our ordering of the cells (test accuracy of the "
        "run chosen by validation) and the paper's Table 1 ordering; blank with fewer than "
        "three cells."
    )
    return Table("jozefowicz_rank", "Agreement with the paper's ordering of the cells", frame, note)
