"""The statistics of the papers' comparisons: Welch's t-test against the reference cell, Holm's
step-down correction, the best fraction of a search by validation, rank correlation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats


def welch(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances); NaN when either side has fewer
    than two values or both are constant (the test is then undefined)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2 or len(y) < 2 or (np.ptp(x) == 0 and np.ptp(y) == 0):
        return math.nan
    return float(stats.ttest_ind(x, y, equal_var=False).pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaNs stay NaN and do not count as tests): controls
    the family-wise error over the variants compared with one reference."""
    indexed = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (len(indexed) - rank) * p))
        adjusted[i] = running
    return adjusted


def best_fraction(frame: pd.DataFrame, fraction: float, higher_is_better: bool) -> pd.DataFrame:
    """The best ``fraction`` of the rows by validation value (at least one), ties broken by
    start time: Greff's 'best 10% of trials according to the validation set'."""
    count = max(1, math.ceil(fraction * len(frame)))
    ordered = frame.sort_values(
        ["valid", "start_time", "run_id"],
        ascending=[not higher_is_better, True, True],
        kind="mergesort",
    )
    return ordered.head(count)


def spearman(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Spearman's rank correlation and its p-value; NaNs when fewer than three pairs."""
    if len(a) < 3:
        return math.nan, math.nan
    result = stats.spearmanr(a, b)
    return float(result.statistic), float(result.pvalue)
