"""Search spaces declared in YAML: each config key gets a distribution and, optionally, a
transform from the sampled value to the value the job receives.

    optim.lr: {type: float, low: 1.0e-6, high: 1.0e-2, log: true}
    optim.momentum: {type: float, low: 0.01, high: 1.0, log: true, transform: one_minus}
    model.num_layers: {type: categorical, choices: [1, 2, 3, 4]}

Greff's momentum is 1 - log-uniform[0.01, 1]: Optuna samples (and fANOVA analyses) the
log-uniform variable, the job gets 1 minus it. Keys under ``cell.`` are the cell's components
(:mod:`ablate.search.components`): categorical, and drawn only in combinations the spec accepts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from ablate.errors import AblateError
from ablate.search import components

TRANSFORMS: dict[str, Callable[[Any], Any]] = {
    "identity": lambda v: v,
    "one_minus": lambda v: 1.0 - v,
}
_KEYS = {"type", "low", "high", "log", "step", "choices", "transform"}


@dataclass(frozen=True)
class Dimension:
    key: str  # the config key the job receives, e.g. "optim.lr"
    distribution: BaseDistribution
    transform: str = "identity"

    @property
    def component(self) -> bool:
        return components.is_component(self.key)

    def value(self, sampled: Any) -> Any:
        return TRANSFORMS[self.transform](sampled)

    def override(self, sampled: Any) -> str:
        """A Hydra override; floats by repr so a value round-trips exactly."""
        value = self.value(sampled)
        text = repr(value) if isinstance(value, float) else str(value)
        return f"{self.key}={text}"

    def grid_values(self) -> list[Any]:
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return list(d.choices)
        if isinstance(d, IntDistribution | FloatDistribution) and d.step is not None:
            count = int(round((d.high - d.low) / d.step)) + 1
            return [d.low + i * d.step for i in range(count)]
        raise AblateError(f"search space: {self.key}: the grid sampler needs 'choices' or a 'step'")


def parse_space(params: Mapping[str, Any] | None) -> list[Dimension]:
    """Validated dimensions; every mistake is one line naming the key.

    Keys may be dotted (``optim.lr: {...}``) or nested (``optim: {lr: {...}}``); nested ones
    can be changed from the command line (``hydra.sweeper.params.optim.lr.low=1e-4``).
    """
    if not params:
        raise AblateError("search space: no parameters (hydra.sweeper.params is empty)")
    return [_dimension(key, spec) for key, spec in _leaves(params, "")]


def _leaves(node: Mapping[str, Any], prefix: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in node.items():
        name = f"{prefix}{key}"
        is_branch = isinstance(value, Mapping) and value and not (set(value) & _KEYS)
        out += _leaves(value, f"{name}.") if is_branch else [(name, value)]
    return out


def _dimension(key: str, spec: Any) -> Dimension:
    def fail(why: str) -> AblateError:
        return AblateError(f"search space: {key}: {why}")

    if not isinstance(spec, Mapping):
        raise fail("must be a mapping like {type: float, low: 0.1, high: 1.0}")
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise fail(f"unknown field {unknown[0]!r} (valid: {', '.join(sorted(_KEYS))})")
    kind = spec.get("type", "categorical" if "choices" in spec else None)
    transform = str(spec.get("transform", "identity"))
    if transform not in TRANSFORMS:
        raise fail(f"unknown transform {transform!r} (valid: {', '.join(TRANSFORMS)})")
    if components.is_component(key):
        components.check_key(key)
        if kind != "categorical" or transform != "identity":
            raise fail("a cell component takes a list 'choices' and no transform")
    if kind == "categorical":
        choices = spec.get("choices")
        if not choices or isinstance(choices, str):
            raise fail("categorical needs a non-empty list 'choices'")
        return Dimension(key, CategoricalDistribution(tuple(choices)), transform)
    if kind not in ("float", "int"):
        raise fail(f"unknown type {kind!r} (valid: float, int, categorical)")
    if "low" not in spec or "high" not in spec:
        raise fail(f"{kind} needs 'low' and 'high'")
    try:
        low, high = float(spec["low"]), float(spec["high"])
    except (TypeError, ValueError):
        raise fail("'low' and 'high' must be numbers") from None
    log = bool(spec.get("log", False))
    step = spec.get("step")
    if not (math.isfinite(low) and math.isfinite(high)):
        raise fail("'low' and 'high' must be finite")
    if low > high:
        raise fail(f"low ({spec['low']}) > high ({spec['high']})")
    if log and low <= 0:
        raise fail(f"a log scale needs low > 0, got low = {spec['low']}")
    if log and step is not None:
        raise fail("'step' cannot be used with a log scale")
    if step is not None and not float(step) > 0:
        raise fail(f"'step' must be > 0, got {step}")
    if kind == "int":
        if low != int(low) or high != int(high):
            raise fail("int bounds must be integers")
        return Dimension(
            key,
            IntDistribution(int(low), int(high), log=log, step=int(step or 1)),
            transform,
        )
    return Dimension(
        key,
        FloatDistribution(low, high, log=log, step=None if step is None else float(step)),
        transform,
    )
