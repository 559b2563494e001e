"""Samplers and pruners by name, seeded so that a search can be repeated and resumed."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.study import Study
from optuna.trial import FrozenTrial

from ablate.errors import AblateError
from ablate.search.space import Dimension

SAMPLERS = ("random", "tpe", "grid")
PRUNERS = ("none", "median", "hyperband")


class TrialSeededRandomSampler(BaseSampler):
    """Random search whose trial k draws from a generator seeded by (seed, study, k, parameter).

    A trial's parameters are then a function of its study and number alone: a resumed search or
    several workers on one study never repeat each other, the same seed gives the same search,
    and different studies draw independently (Greff's protocol) unless ``paired``, when trial k
    of every study gets the same settings (common random numbers).
    """

    def __init__(self, seed: int, paired: bool = False) -> None:
        self.seed = int(seed)
        self.paired = paired

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        study_key = "" if self.paired else study.study_name
        key = f"{self.seed}/{study_key}/{trial.number}/{param_name}"
        digest = hashlib.sha256(key.encode()).digest()
        rng_seed = int.from_bytes(digest[:4], "little")
        sampler = RandomSampler(seed=rng_seed)
        return sampler.sample_independent(study, trial, param_name, param_distribution)


def build_sampler(cfg: Mapping[str, Any], space: Sequence[Dimension], existing: int) -> BaseSampler:
    """``existing`` trials already in the study reseed TPE, so a resumed TPE search does not
    replay its first random startup trials."""
    name = str(cfg.get("name", "random"))
    seed = int(cfg.get("seed", 0))
    if name == "random":
        return TrialSeededRandomSampler(seed, paired=bool(cfg.get("paired", False)))
    if name == "tpe":
        startup = int(cfg.get("n_startup_trials", 10))
        return TPESampler(seed=seed + existing, n_startup_trials=startup)
    if name == "grid":
        return GridSampler({d.key: d.grid_values() for d in space}, seed=seed)
    raise AblateError(
        f"hydra.sweeper.sampler.name: unknown sampler {name!r} (valid: {', '.join(SAMPLERS)})"
    )


def build_pruner(cfg: Mapping[str, Any] | None) -> optuna.pruners.BasePruner:
    cfg = cfg or {}
    name = str(cfg.get("name", "none"))
    options = {k: v for k, v in cfg.items() if k != "name"}
    try:
        if name == "none":
            return optuna.pruners.NopPruner()
        if name == "median":
            return optuna.pruners.MedianPruner(**options)
        if name == "hyperband":
            return optuna.pruners.HyperbandPruner(**options)
    except TypeError as err:
        raise AblateError(f"hydra.sweeper.pruner: {err}") from None
    raise AblateError(
        f"hydra.sweeper.pruner.name: unknown pruner {name!r} (valid: {', '.join(PRUNERS)})"
    )
