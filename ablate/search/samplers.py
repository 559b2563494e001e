"""Samplers and pruners by name, seeded so that a search can be repeated and resumed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
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
MAX_DRAWS = 10_000  # of a trial's components, before the space is taken to have no valid cell


class TrialSeededRandomSampler(BaseSampler):
    """Random search whose trial k draws from a generator seeded by (seed, study, k, parameter).

    A trial's parameters are then a function of its study and number alone: a resumed search or
    several workers on one study never repeat each other, the same seed gives the same search,
    and different studies draw independently (Greff's protocol) unless ``paired``, when trial k
    of every study gets the same settings (common random numbers).

    ``constrained`` dimensions (a cell's components) are drawn together, again and again with
    the draw's number in the key, until ``accepts`` takes them; the first draw is the one an
    unconstrained search would make.
    """

    def __init__(
        self,
        seed: int,
        paired: bool = False,
        constrained: Sequence[Dimension] = (),
        accepts: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self.seed = int(seed)
        self.paired = paired
        self.constrained = {d.key: d.distribution for d in constrained} if accepts else {}
        self.accepts = accepts

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return dict(self.constrained)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space or self.accepts is None:
            return {}
        for draw in range(MAX_DRAWS):
            values = {
                name: self._draw(study, trial, name, dist, draw)
                for name, dist in sorted(search_space.items())
            }
            if self.accepts(values):
                return values
        raise AblateError(
            f"search space: no valid cell in {MAX_DRAWS} draws of its components "
            f"({', '.join(sorted(search_space))}); widen the choices"
        )

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._draw(study, trial, param_name, param_distribution, 0)

    def _draw(
        self, study: Study, trial: FrozenTrial, name: str, dist: BaseDistribution, draw: int
    ) -> Any:
        study_key = "" if self.paired else study.study_name
        key = f"{self.seed}/{study_key}/{trial.number}/{name}" + (f"/{draw}" if draw else "")
        digest = hashlib.sha256(key.encode()).digest()
        rng_seed = int.from_bytes(digest[:4], "little")
        sampler = RandomSampler(seed=rng_seed)
        return sampler.sample_independent(study, trial, name, dist)


def build_sampler(
    cfg: Mapping[str, Any],
    space: Sequence[Dimension],
    existing: int,
    accepts: Callable[[dict[str, Any]], bool] | None = None,
) -> BaseSampler:
    """``existing`` trials already in the study reseed TPE, so a resumed TPE search does not
    replay its first random startup trials. ``accepts`` judges a draw of the cell's
    components (the random sampler redraws until it accepts one)."""
    name = str(cfg.get("name", "random"))
    seed = int(cfg.get("seed", 0))
    components = [d for d in space if d.component]
    if components and name != "random":
        raise AblateError(
            f"hydra.sweeper.sampler.name={name}: a search over cell components needs the "
            "random sampler (it redraws the combinations the cell spec refuses)"
        )
    if name == "random":
        return TrialSeededRandomSampler(seed, bool(cfg.get("paired", False)), components, accepts)
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
