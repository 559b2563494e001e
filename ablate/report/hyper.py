"""Greff et al.'s hyperparameter analysis, per task, pooled over the cells (as the paper pooled
its variants): fANOVA importance of each searched hyperparameter (Optuna's
FanovaImportanceEvaluator, seeded), and from a seeded random forest of our own, the marginal
test metric against learning rate, hidden size and input noise with the spread between trees,
and the learning rate x hidden size interaction.

The trials are the Optuna studies' (their raw sampled parameters and pinned search space); the
value of each is the test metric of its MLflow run, as Greff analysed test performance. Values
beyond 3 interquartile ranges on the bad side are capped there, and a diverged trial gets the
worst value left: it is bad, but a 1e9 sentinel (or one exploded NLL) would be all the
variance there is. Pruned and failed trials have no test value and are left out.
Log-scaled parameters are analysed in log space, the space they were sampled uniformly in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.importance import FanovaImportanceEvaluator
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState
from sklearn.ensemble import RandomForestRegressor

from ablate.report.tables import Table
from ablate.search.space import TRANSFORMS
from ablate.search.sweep import SPACE_ATTR
from ablate.search.trial import MLFLOW_RUN_ATTR

MARGINAL_KEYS = ("optim.lr", "model.hidden_size", "model.input_noise")
INTERACTION = ("optim.lr", "model.hidden_size")
LABEL = {
    "optim.lr": "learning rate",
    "model.hidden_size": "hidden size",
    "model.input_noise": "input noise std",
    "optim.momentum": "momentum",
    "model.init_scale": "init scale",
    "model.num_layers": "layers",
    "optim.clip_norm": "gradient clip",
}
MIN_TRIALS = 10
# 64 trees as Optuna's default; their depth capped because Optuna's fANOVA walks every leaf
# of every tree per parameter: at depth 64 a Greff-sized task (1,800 trials) takes minutes,
# at depth 8 (at most 256 leaves) seconds, for importances within a few percent.
N_TREES, MAX_DEPTH = 64, 8
_GRID, _PAIR_GRID, _BASE = 40, 16, 256


@dataclass(frozen=True)
class Dim:
    """A searched hyperparameter in the space fANOVA sees: log-scaled ones as log10, a
    categorical as the index of its choices in sorted order."""

    key: str
    distribution: BaseDistribution
    transform: str

    @property
    def log(self) -> bool:
        return bool(getattr(self.distribution, "log", False))

    @property
    def choices(self) -> tuple[Any, ...] | None:
        d = self.distribution
        return tuple(sorted(d.choices)) if isinstance(d, CategoricalDistribution) else None

    def bounds(self) -> tuple[float, float]:
        if self.choices is not None:
            return 0.0, float(len(self.choices) - 1)
        d = self.distribution
        assert isinstance(d, FloatDistribution | IntDistribution)
        low, high = float(d.low), float(d.high)
        return (math.log10(low), math.log10(high)) if self.log else (low, high)

    def encode(self, raw: Any) -> float:
        if self.choices is not None:
            return float(self.choices.index(raw))
        return math.log10(raw) if self.log else float(raw)

    def job_value(self, encoded: float) -> Any:
        """What the job received (after the space's transform, e.g. momentum = 1 - u)."""
        if self.choices is not None:
            raw = self.choices[int(round(encoded))]
        else:
            raw = 10**encoded if self.log else encoded
        return TRANSFORMS[self.transform](raw)

    def fanova_distribution(self) -> BaseDistribution:
        if self.choices is not None:
            return self.distribution
        return FloatDistribution(*self.bounds())

    def fanova_value(self, raw: Any) -> Any:
        return raw if self.choices is not None else self.encode(raw)

    def describe(self) -> str:
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            text = "one of {" + ", ".join(str(c) for c in d.choices) + "}"
        else:
            assert isinstance(d, FloatDistribution | IntDistribution)
            scale = "log-uniform" if d.log else "uniform"
            kind = " int" if isinstance(d, IntDistribution) else ""
            text = f"{scale}{kind} [{d.low:g}, {d.high:g}]"
        return "1 - " + text if self.transform == "one_minus" else text


@dataclass(frozen=True)
class Marginal:
    dim: Dim
    x: np.ndarray  # job units
    mean: np.ndarray
    std: np.ndarray  # between trees


@dataclass(frozen=True)
class Interaction:
    dims: tuple[Dim, Dim]
    x: np.ndarray  # job units of dims[0]
    y: np.ndarray  # job units of dims[1]
    grid: np.ndarray  # predicted test metric, (len(x), len(y))
    fractions: dict[str, float]  # variance explained: each main effect and the pair


@dataclass(frozen=True)
class Analysis:
    task: str
    metric: str
    higher_is_better: bool
    trials: int = 0
    settings: int = 0  # distinct hyperparameter settings among them (studies may share them)
    clipped: int = 0  # outliers capped and diverged trials given the worst value
    dims: list[Dim] = field(default_factory=list)
    importances: dict[str, float] = field(default_factory=dict)
    marginals: list[Marginal] = field(default_factory=list)
    interaction: Interaction | None = None
    skipped: str = ""  # why there is no analysis


def _space(storage: BaseStorage, study_id: int) -> dict[str, str]:
    """The transforms of the study's pinned search space (identity where not pinned)."""
    pinned = storage.get_study_user_attrs(study_id).get(SPACE_ATTR)
    return {k: str(v[1]) for k, v in json.loads(pinned).items()} if pinned else {}


def study_trials(
    storage: BaseStorage, names: Sequence[str]
) -> tuple[list[FrozenTrial], dict[str, str], list[str]]:
    """Complete trials of the named studies, their transforms, and the names not found."""
    trials: list[FrozenTrial] = []
    transforms: dict[str, str] = {}
    missing = []
    for name in sorted(names):
        try:
            study_id = storage.get_study_id_from_name(name)
        except KeyError:
            missing.append(name)
            continue
        transforms.update(_space(storage, study_id))
        trials += storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,))
    return trials, transforms, missing


def _dims(trials: Sequence[FrozenTrial], transforms: dict[str, str]) -> list[Dim]:
    """The parameters every trial shares with one distribution, minus constants."""
    space = optuna.search_space.intersection_search_space(trials)
    return [
        Dim(key, dist, transforms.get(key, "identity"))
        for key, dist in sorted(space.items())
        if not dist.single()
    ]


def bad_bound(values: np.ndarray, higher_is_better: bool) -> float:
    """How bad a value may be before it is an outlier: 3 interquartile ranges beyond the
    quartile on the bad side (an exploded run's NLL of 1e4 next to typical 11s would be all
    the variance there is)."""
    q1, q3 = np.percentile(values, [25, 75])
    return float(q1 - 3 * (q3 - q1)) if higher_is_better else float(q3 + 3 * (q3 - q1))


def values_of(trials: Sequence[FrozenTrial], jobs: pd.DataFrame) -> tuple[list, np.ndarray, int]:
    """Each trial's test value from its MLflow run, its trials kept, and how many values were
    capped: outliers on the bad side at :func:`bad_bound`, diverged trials at the worst
    value left."""
    runs = jobs.set_index("run_id")
    higher = bool((jobs["direction"] == "maximize").any())
    kept, values, diverged, seen = [], [], [], set()
    for trial in trials:
        run_id = trial.system_attrs.get(MLFLOW_RUN_ATTR)
        if run_id not in runs.index or run_id in seen:  # a repeated setting's trial: ran once
            continue
        seen.add(run_id)
        run = runs.loc[run_id]
        if run["state"] == "finished" and not math.isnan(run["test"]):
            kept.append(trial)
            values.append(float(run["test"]))
        elif run["state"] == "diverged":
            diverged.append(trial)
    if not values:
        return [], np.array([]), 0
    y = np.asarray(values, dtype=float)
    bound = bad_bound(y, higher)
    capped = np.maximum(y, bound) if higher else np.minimum(y, bound)
    worst = float(capped.min() if higher else capped.max())
    clipped = int(np.sum(capped != y)) + len(diverged)
    return kept + diverged, np.concatenate([capped, np.full(len(diverged), worst)]), clipped


def matrix(dims: Sequence[Dim], trials: Sequence[FrozenTrial]) -> np.ndarray:
    """The trials' parameters as the forest sees them, one row per trial."""
    return np.array([[d.encode(t.params[d.key]) for d in dims] for t in trials], dtype=float)


def fanova_importances(
    dims: list[Dim], trials: list[FrozenTrial], y: np.ndarray, seed: int
) -> dict[str, float]:
    study = optuna.create_study()
    study.add_trials(
        [
            optuna.trial.create_trial(
                params={d.key: d.fanova_value(t.params[d.key]) for d in dims},
                distributions={d.key: d.fanova_distribution() for d in dims},
                value=float(v),
            )
            for t, v in zip(trials, y, strict=True)
        ]
    )
    found = optuna.importance.get_param_importances(
        study,
        evaluator=FanovaImportanceEvaluator(n_trees=N_TREES, max_depth=MAX_DEPTH, seed=seed),
        normalize=True,
    )
    return {d.key: float(found.get(d.key, 0.0)) for d in dims}


def _uniform(dims: list[Dim], count: int, rng: np.random.Generator) -> np.ndarray:
    columns = []
    for d in dims:
        low, high = d.bounds()
        if d.choices is not None:
            columns.append(rng.integers(0, len(d.choices), count).astype(float))
        else:
            columns.append(rng.uniform(low, high, count))
    return np.column_stack(columns)


def _grid(d: Dim, points: int) -> np.ndarray:
    low, high = d.bounds()
    return np.arange(len(d.choices), dtype=float) if d.choices else np.linspace(low, high, points)


def _design(base: np.ndarray, fixed: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """Every combination of the ``fixed`` columns' grid values with every row of ``base``
    (the other parameters, uniform): shape (*grid sizes, len(base), columns)."""
    grids = np.meshgrid(*[values for _, values in fixed], indexing="ij")
    x = np.broadcast_to(base, (*grids[0].shape, *base.shape)).copy()
    for k, (column, _) in enumerate(fixed):
        x[..., column] = grids[k][..., None]
    return x


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    return model.predict(x.reshape(-1, x.shape[-1])).reshape(x.shape[:-1])


def fit_forest(x: np.ndarray, y: np.ndarray, seed: int) -> RandomForestRegressor:
    forest = RandomForestRegressor(
        n_estimators=N_TREES, max_depth=MAX_DEPTH, random_state=seed, n_jobs=1
    )
    return forest.fit(x, y)


def base_design(dims: list[Dim], seed: int) -> np.ndarray:
    """The other parameters' values the marginals average over: uniform, seeded."""
    return _uniform(dims, _BASE, np.random.default_rng(seed))


def marginal(
    forest: RandomForestRegressor, base: np.ndarray, column: int, grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The predicted metric at each grid value of one column, averaged over ``base``: the
    mean and the standard deviation between the trees."""
    design = _design(base, [(column, grid)])
    trees = np.stack([_predict(t, design).mean(axis=-1) for t in forest.estimators_])
    return trees.mean(axis=0), trees.std(axis=0)


def pair_effects(
    forest: RandomForestRegressor,
    base: np.ndarray,
    first: tuple[int, np.ndarray],
    second: tuple[int, np.ndarray],
) -> tuple[np.ndarray, float, float, float]:
    """Two columns' predicted grid and the fractions of the variance their main effects and
    their interaction explain. One product design (grid x grid x uniform others), so that the
    variance splits exactly into the two main effects, their interaction and the rest."""
    pred = _predict(forest, _design(base[: _BASE // 2], [first, second]))
    total = float(pred.var())
    pair = pred.mean(axis=-1)
    fa, fb = pair.mean(axis=1), pair.mean(axis=0)
    joint = pair - fa[:, None] - fb[None, :] + pair.mean()
    fractions = [float(np.var(v)) / total if total > 0 else math.nan for v in (fa, fb, joint)]
    return pair, *fractions


def _forest_analysis(
    dims: list[Dim], x: np.ndarray, y: np.ndarray, seed: int
) -> tuple[list[Marginal], Interaction | None]:
    forest = fit_forest(x, y, seed)
    base = base_design(dims, seed)
    index = {d.key: i for i, d in enumerate(dims)}
    marginals = []
    for key in MARGINAL_KEYS:
        if key not in index:
            continue
        d = dims[index[key]]
        grid = _grid(d, _GRID)
        mean, std = marginal(forest, base, index[key], grid)
        job = np.array([d.job_value(g) for g in grid], dtype=float)
        marginals.append(Marginal(d, job, mean, std))
    if not all(k in index for k in INTERACTION):
        return marginals, None
    a, b = (dims[index[k]] for k in INTERACTION)
    ga, gb = _grid(a, _PAIR_GRID), _grid(b, _PAIR_GRID)
    pair, fa, fb, joint = pair_effects(forest, base, (index[a.key], ga), (index[b.key], gb))
    fractions = {a.key: fa, b.key: fb, f"{a.key} x {b.key}": joint}
    interaction = Interaction(
        (a, b),
        np.array([a.job_value(g) for g in ga], dtype=float),
        np.array([b.job_value(g) for g in gb], dtype=float),
        pair,
        fractions,
    )
    return marginals, interaction


def analyse(storage: BaseStorage | None, jobs: pd.DataFrame, task: str, seed: int) -> Analysis:
    rows = jobs[jobs["task"] == task]
    head = Analysis(
        task, str(rows["metric"].iloc[0]), bool((rows["direction"] == "maximize").any())
    )
    names = sorted(n for n in rows["study"].unique() if n)
    if not names:
        return _skip(head, "no run of this task came from an Optuna study")
    if storage is None:
        return _skip(head, "no Optuna storage found (give --optuna-storage)")
    trials, transforms, missing = study_trials(storage, names)
    if missing and len(missing) == len(names):
        return _skip(head, f"the Optuna storage has none of the {len(names)} studies")
    trials, y, clipped = values_of(trials, rows)
    if len(trials) < MIN_TRIALS:
        return _skip(head, f"too few trials with a test value ({len(trials)} < {MIN_TRIALS})")
    if np.ptp(y) == 0:
        return _skip(head, "every trial has the same test value")
    dims = _dims(trials, transforms)
    if not dims:
        return _skip(head, "the studies share no searched hyperparameter")
    x = matrix(dims, trials)
    marginals, interaction = _forest_analysis(dims, x, y, seed)
    return Analysis(
        head.task,
        head.metric,
        head.higher_is_better,
        trials=len(trials),
        settings=len({tuple(row) for row in x.tolist()}),
        clipped=clipped,
        dims=dims,
        importances=fanova_importances(dims, trials, y, seed),
        marginals=marginals,
        interaction=interaction,
    )


def _skip(head: Analysis, why: str) -> Analysis:
    return Analysis(head.task, head.metric, head.higher_is_better, skipped=why)


def importance_table(found: list[Analysis]) -> Table:
    done = [a for a in found if not a.skipped]
    keys = sorted({d.key: d for a in done for d in a.dims}.items())
    rows = []
    for key, dim in keys:
        row: dict[str, object] = {"hyperparameter": key, "sampled as": dim.describe()}
        for a in done:
            row[a.task] = a.importances.get(key, math.nan)
        rows.append(row)
    trials = ", ".join(
        f"{a.task} {a.trials} ({a.settings} distinct settings, {a.clipped} capped)" for a in done
    )
    note = (
        "Fraction of the variance of the test metric each hyperparameter explains alone "
        "(fANOVA main effects, Optuna's FanovaImportanceEvaluator, "
        f"{N_TREES} trees of depth <= {MAX_DEPTH}, seeded; normalised to sum to 1 per task), "
        "pooled over the cells. "
        f"Trials analysed: {trials or 'none'}."
    )
    title = "fANOVA: importance of each hyperparameter per task"
    return Table("fanova_importance", title, pd.DataFrame(rows), note)


def interaction_table(found: list[Analysis]) -> Table:
    rows = []
    for a in found:
        if a.interaction is None:
            continue
        first, second = (d.key for d in a.interaction.dims)
        rows.append(
            {
                "task": a.task,
                "trials": a.trials,
                first: a.interaction.fractions[first],
                second: a.interaction.fractions[second],
                "interaction": a.interaction.fractions[f"{first} x {second}"],
            }
        )
    note = (
        "Fraction of the random forest's predicted variance (uniform over the search space, "
        "log-scaled parameters in log space) explained by each main effect and by the pairwise "
        "interaction alone (fANOVA's decomposition, Monte Carlo over the other parameters)."
    )
    title = "Learning rate x hidden size: variance explained"
    return Table("fanova_interaction", title, pd.DataFrame(rows), note)
