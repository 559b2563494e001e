"""A report says when its runs are not its protocol in full: smoke overlays name what they
shrink, an unfinished paper-scale sweep says how far it got, in the banner and the verdicts."""

from __future__ import annotations

import pandas as pd

from ablate.report.scale import measure, planned


def _jobs(studies: int, trials: int, max_epochs: float, max_batches: float = float("nan")):
    rows = [
        {
            "study": f"s/{s}",
            "state": "finished" if t else "diverged",
            "trainer.max_epochs": max_epochs,
            "trainer.max_batches": max_batches,
        }
        for s in range(studies)
        for t in range(trials)
    ]
    rows.append({"study": "s/0", "state": "running", "trainer.max_epochs": max_epochs,
                 "trainer.max_batches": max_batches})  # fmt: skip
    return pd.DataFrame(rows)


def test_a_smoke_experiment_names_what_it_shrinks():
    scale = measure("greff2017_smoke", _jobs(27, 6, 12))
    assert scale.label == "at smoke scale"
    assert "`greff2017_smoke` shrinks `greff2017`" in scale.detail
    assert "6 of 200 trials per study" in scale.detail
    assert "at most 12 of 150 epochs" in scale.detail
    assert "not evidence" in scale.detail
    assert scale.prefix("holds") == "at smoke scale: holds"


def test_a_smoke_experiment_capping_minibatches_says_so():
    scale = measure("jozefowicz2015_smoke", _jobs(30, 3, 6, max_batches=100))
    assert scale.label == "at smoke scale"
    assert "3 of 20 trials per study" in scale.detail
    assert "at most 100 minibatches per epoch" in scale.detail


def test_an_unfinished_paper_scale_sweep_is_partial():
    scale = measure("greff2017", _jobs(27, 10, 150))
    assert scale.label == "partial (270 of 5,400 trials)"
    assert scale.prefix("does not hold") == "partial (270 of 5,400 trials): does not hold"


def test_a_finished_paper_scale_sweep_and_other_experiments_are_unlabelled():
    assert measure("greff2017", _jobs(27, 200, 150)).label is None
    assert measure("weiss2018", _jobs(30, 1, 30)).label is None  # a grid: no n_trials
    assert measure("my_own_study", _jobs(2, 3, 5)).label is None
    assert measure("my_own_study", _jobs(2, 3, 5)).prefix("holds") == "holds"


def test_a_plain_multirun_plans_its_grid_over_the_overlay_it_starts_from():
    # modern_counting's task, cell and seed lists replace weiss2018's; its epochs are weiss2018's.
    plan = planned("modern_counting")
    assert plan["grid"] == {
        "task": ["anbn"],
        "cell": ["lstm", "slstm", "gru", "mingru", "minlstm", "indrnn"],
        "seed": ["0", "1", "2"],
    }
    assert plan["trainer.max_epochs"] == 30
    assert planned("weiss2018")["grid"]["seed"] == [str(seed) for seed in range(10)]
    assert "grid" not in planned("greff2017")  # a search: trials, not a grid
