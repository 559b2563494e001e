"""Samplers and pruners by name, seeded so that a search can be repeated and resumed."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.study import Study
from optuna.trial import FrozenTrial

from ablate.errors import AblateError
from ablate.search.space import Dimension

SAMPLERS = ("random", "tpe", "grid")
PRUNERS = ("none", "median", "hyperband")
MAX_DRAWS = 10_000  # of a trial's components, before the space is taken to have no valid cell
MAX_ENUMERATED = 1 << 16  # component combinations counted one by one for the valid settings


class TrialSeededRandomSampler(BaseSampler):
    """Random search whose trial k draws from a generator seeded by (seed, study, k, parameter).

    A trial's parameters are then a function of its study and number alone: a resumed search or
    several workers on one study never repeat each other, the same seed gives the same search,
    and different studies draw independently (Greff's protocol) unless ``paired``, when trial k
    of every study gets the same settings (common random numbers).

    ``constrained`` dimensions (a cell's components) are drawn together, again and again with
    the draw's number in the key, until ``accepts`` takes them; the first draw is the one an
    unconstrained search would make.

    Over a space of finitely many settings (every dimension a choice or a stepped range, as
    Jozefowicz's sets) a trial does not repeat a setting an earlier trial of its study drew:
    it redraws, again with the round's number in the key, until the setting is new (or every
    setting is taken). With replacement, 20 draws from Jozefowicz's 840 settings repeat one
    with probability ~0.2, and a repeat is the same job (same settings, same seed): one
    training counted as two trials.
    """

    def __init__(
        self,
        seed: int,
        paired: bool = False,
        constrained: Sequence[Dimension] = (),
        accepts: Callable[[dict[str, Any]], bool] | None = None,
        space: Sequence[Dimension] = (),
    ) -> None:
        self.seed = int(seed)
        self.paired = paired
        self.constrained = {d.key: d.distribution for d in constrained} if accepts else {}
        self.accepts = accepts
        self.settings = self._valid_settings(space)
        # Drawn together: every dimension where repeats are possible, else the constrained ones.
        self.joint = {d.key: d.distribution for d in space} if self.settings else self.constrained

    def _valid_settings(self, space: Sequence[Dimension]) -> int:
        """How many settings the spec accepts (0: unbounded). Counting the refused ones too, a
        study that has drawn every valid setting would redraw MAX_DRAWS rounds per trial
        (seconds each) looking for a new one that does not exist."""
        total = settings_count([d.distribution for d in space])
        if not total or not self.constrained or self.accepts is None:
            return total
        choices = [
            (key, dist.choices)
            for key, dist in sorted(self.constrained.items())
            if isinstance(dist, CategoricalDistribution)
        ]
        combos = settings_count([dist for dist in self.constrained.values()])
        if len(choices) < len(self.constrained) or combos > MAX_ENUMERATED:
            return total
        keys = [key for key, _ in choices]
        valid = sum(
            bool(self.accepts(dict(zip(keys, values, strict=True))))
            for values in itertools.product(*(c for _, c in choices))
        )
        return total // combos * valid

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return dict(self.joint)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        taken = self._taken(study, trial) if self.settings else set()
        rounds = MAX_DRAWS if self.settings and len(taken) < self.settings else 1
        for round_ in range(rounds):
            values = self._setting(study, trial, search_space, round_)
            if _key(values) not in taken:
                return values
        return self._setting(study, trial, search_space, 0)  # every setting taken: repeat

    def _setting(
        self, study: Study, trial: FrozenTrial, space: dict[str, BaseDistribution], round_: int
    ) -> dict[str, Any]:
        """Round ``round_``'s setting: its free dimensions, then constrained ones drawn until
        accepted. Round 0 draws what :meth:`sample_independent` would."""
        free = {
            name: self._draw(study, trial, name, dist, round_)
            for name, dist in sorted(space.items())
            if name not in self.constrained
        }
        if not self.constrained or self.accepts is None:
            return free
        for draw in range(round_ * MAX_DRAWS, (round_ + 1) * MAX_DRAWS):
            values = {
                name: self._draw(study, trial, name, dist, draw)
                for name, dist in sorted(self.constrained.items())
            }
            if self.accepts(values):
                return {**free, **values}
        raise AblateError(
            f"search space: no valid cell in {MAX_DRAWS} draws of its components "
            f"({', '.join(sorted(self.constrained))}); widen the choices"
        )

    def _taken(self, study: Study, trial: FrozenTrial) -> set[tuple]:
        """The settings of the study's earlier trials (a queued retry's included)."""
        taken = set()
        for other in study.get_trials(deepcopy=False):
            if other.number < trial.number:
                params = other.params or other.system_attrs.get("fixed_params") or {}
                if params:
                    taken.add(_key({k: v for k, v in params.items() if k in self.joint}))
        return taken

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


def _key(values: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in values.items()))


def settings_count(distributions: Sequence[BaseDistribution]) -> int:
    """How many settings a space has; 0 when any dimension is continuous (or none is given)."""
    total = 1 if distributions else 0
    for dist in distributions:
        if isinstance(dist, CategoricalDistribution):
            total *= len(dist.choices)
        elif isinstance(dist, IntDistribution):
            total *= (dist.high - dist.low) // dist.step + 1
        elif isinstance(dist, FloatDistribution) and dist.step is not None:
            total *= round((dist.high - dist.low) / dist.step) + 1
        else:
            return 0
    return total


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
        paired = bool(cfg.get("paired", False))
        return TrialSeededRandomSampler(seed, paired, components, accepts, space)
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
