"""Weiss et al.'s question: how far does each cell count? The test generalisation limits on the
counting languages (the largest n up to which every a^n b^n [c^n] is accepted), per cell."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ablate.report.greff import WEISS_TASK, cell_order
from ablate.report.tables import Table

LIMITS = (
    "test_counting_limit",
    "test_strict_limit",
    "test_generalisation_limit",
    "test_accept_at_2x",
)


def counting(jobs: pd.DataFrame) -> pd.DataFrame:
    """Every counting run, with the limit columns even where no run finished."""
    rows = jobs[jobs["task"] == WEISS_TASK].copy()
    for column in LIMITS:
        if column not in rows:
            rows[column] = np.nan
    return rows


def table(runs: pd.DataFrame) -> Table:
    """Per (language, cell): how many runs, the training range, and the limits reached."""
    out = []
    pairs = [
        (language, cell)
        for language in sorted(runs["task.language"].unique())
        for cell in cell_order(list(runs.loc[runs["task.language"] == language, "cell"].unique()))
    ]
    for language, cell in pairs:
        rows = runs[(runs["task.language"] == language) & (runs["cell"] == cell)]
        done = rows[rows["state"] == "finished"]
        out.append(
            {
                "language": language,
                "cell": cell,
                "kind": str(rows["cell.kind"].iloc[0]),
                "runs": len(rows),
                "finished": len(done),
                "n_train": float(rows["task.n_train"].max()),
                "counting limit (best)": float(done["test_counting_limit"].max()),
                "counting limit (median)": float(done["test_counting_limit"].median()),
                "Weiss limit (best)": float(done["test_generalisation_limit"].max()),
                "strict limit (best)": float(done["test_strict_limit"].max()),
                "accepts 2 x n_train": float(done["test_accept_at_2x"].mean()),
            }
        )
    note = (
        "Test limits of the finished runs: the largest n such that every string up to a^n b^n "
        "[c^n] is accepted. 'Weiss limit': Weiss et al.'s rule (every actual next symbol, the "
        "end included, above the threshold), which a predictor that spreads its mass over every "
        "symbol meets without counting; 'counting': Weiss's rule, and every forced next symbol "
        "(all but those after an a) the most probable, so the model must know when the b's "
        "[and c's] end; 'strict': Weiss's rule, and every illegal next symbol at or below the "
        "threshold. 'accepts 2 x n_train': the fraction of finished runs whose counting rule "
        "accepts n = 2 n_train."
    )
    title = "Weiss: generalisation limits on the counting languages"
    return Table("weiss_limits", title, pd.DataFrame(out), note)
