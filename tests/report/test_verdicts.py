"""Verdict rows read off the hyperparameter analyses: what they measure and say."""

from __future__ import annotations

import pandas as pd
import pytest

from ablate.report import hyper, verdicts, weiss

LR = "Learning rate is by far the most important hyperparameter"


def _row(importances: dict[str, dict[str, float]], settings: int = 60) -> tuple[str, str]:
    analyses = [
        hyper.Analysis(task, "error", False, trials=settings, settings=settings, importances=imp)
        for task, imp in importances.items()
    ]
    best = pd.DataFrame(columns=["task", "cell"])  # no search: the other rows are not tested
    counting = pd.DataFrame(
        columns=["state", "task.language", "cell", "cell.kind", "task.n_train", *weiss.LIMITS]
    )
    evidence = verdicts.Evidence([], 0.05, analyses, best, pd.Series(dtype=int), [], counting)
    frame = verdicts.judge(evidence)[0].frame.set_index("finding")
    return frame.loc[LR, "measured"], frame.loc[LR, "verdict"]


@pytest.mark.parametrize(
    "importances,measured,verdict",
    [
        (
            {"digits": {"optim.lr": 0.8, "model.hidden_size": 0.15, "optim.momentum": 0.05}},
            "digits: lr 0.80, largest other model.hidden_size 0.15",
            verdicts.HOLDS,
        ),
        # lr second: the row names what beats it, not lr a second time
        (
            {"arith": {"optim.lr": 0.33, "optim.clip_norm": 0.36, "model.num_layers": 0.31}},
            "arith: lr 0.33, largest other optim.clip_norm 0.36",
            verdicts.FAILS,
        ),
        # first, but not by a factor of two
        (
            {"jsb": {"optim.lr": 0.5, "model.hidden_size": 0.3, "optim.momentum": 0.2}},
            "jsb: lr 0.50, largest other model.hidden_size 0.30",
            verdicts.FAILS,
        ),
        ({"vowels": {"optim.lr": 1.0}}, "vowels: lr 1.00", verdicts.HOLDS),
        # a component search: the cell's components are ranked in their own row, not this one
        (
            {
                "jsb": {
                    "optim.lr": 0.14,
                    "cell.output_activation": 0.67,
                    "cell.block_activation": 0.13,
                    "optim.momentum": 0.01,
                }
            },
            "jsb: lr 0.14, largest other optim.momentum 0.01",
            verdicts.HOLDS,
        ),
    ],
    ids=["dominant", "second", "first-not-by-far", "alone", "components-aside"],
)
def test_the_learning_rate_row_names_the_largest_other_importance(importances, measured, verdict):
    assert _row(importances) == (measured, verdict)


def test_the_learning_rate_row_needs_enough_settings():
    importances = {"digits": {"optim.lr": 0.9, "optim.momentum": 0.1}}
    assert _row(importances, settings=verdicts.MIN_FANOVA_SETTINGS - 1)[1] == verdicts.TOO_FEW
