"""Optimisers and the rules that change the learning rate or end training."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import torch
from torch import nn

from ablate.errors import AblateError, choice


class OptimizerName(StrEnum):
    SGD = "sgd"  # with Nesterov momentum: Greff; plain: Jozefowicz
    ADAM = "adam"


class ScheduleName(StrEnum):
    PLATEAU = "plateau"  # fixed rate, stop after `patience` epochs without improvement
    JOZEFOWICZ = "jozefowicz"  # after `patience` bad epochs, halve each epoch for k epochs, stop


class LossReduction(StrEnum):
    MEAN = "mean"  # mean over scored positions
    PER_SEQUENCE = "per_sequence"  # summed over time, divided by batch size (Jozefowicz)
    SUM = "sum"  # summed over the batch: the step size of online (per-sequence) SGD (Greff)


@dataclass(frozen=True)
class OptimConfig:
    name: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    clip_norm: float | None = None
    schedule: str = "plateau"
    decay_epochs: int = 4
    decay_factor: float = 0.5
    loss_reduction: str = "mean"

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> OptimConfig:
        data = dict(cfg)
        if "betas" in data:
            data["betas"] = tuple(data["betas"])
        config = cls(**data)
        for name in ("lr", "momentum", "weight_decay", "clip_norm", "decay_factor"):
            value = getattr(config, name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number and not (name == "clip_norm" and value is None):
                raise AblateError(f"optim.{name} must be a number, got {value!r}")
        choice(OptimizerName, config.name, "optim.name: unknown value")
        choice(ScheduleName, config.schedule, "optim.schedule: unknown value")
        choice(LossReduction, config.loss_reduction, "optim.loss_reduction: unknown value")
        if not (config.lr > 0 and math.isfinite(config.lr)):
            raise AblateError(f"optim.lr must be a finite number > 0, got {config.lr}")
        if not (config.weight_decay >= 0 and math.isfinite(config.weight_decay)):
            raise AblateError(
                f"optim.weight_decay must be a finite number >= 0, got {config.weight_decay}"
            )
        if len(config.betas) != 2 or not all(_fraction(b) for b in config.betas):
            raise AblateError(f"optim.betas must be two numbers in [0, 1), got {config.betas}")
        if not 0 <= config.momentum < 1:
            raise AblateError(f"optim.momentum must be in [0, 1), got {config.momentum}")
        if config.nesterov and config.momentum == 0 and config.name == OptimizerName.SGD:
            raise AblateError("optim.nesterov=true needs optim.momentum > 0")
        if config.clip_norm is not None and not config.clip_norm > 0:
            raise AblateError(f"optim.clip_norm must be > 0 or null, got {config.clip_norm}")
        if config.decay_epochs < 0 or not 0 < config.decay_factor <= 1:
            raise AblateError("optim.decay_epochs must be >= 0 and optim.decay_factor in (0, 1]")
        return config


def _fraction(value: object) -> bool:
    """A number in [0, 1)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1


def build_optimizer(params: Iterable[nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    if cfg.name == OptimizerName.ADAM:
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
    )


class Schedule:
    """Decides after each epoch, from whether validation improved, to go on and at what rate.

    Plateau (decay_epochs = 0) is early stopping with ``patience``; Jozefowicz's schedule keeps
    the rate fixed until ``patience`` epochs pass without improvement, then multiplies it by
    ``decay_factor`` before each of ``decay_epochs`` more epochs, then stops.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, patience: int, decay_epochs: int, factor: float
    ) -> None:
        self.optimizer = optimizer
        self.patience = patience
        self.decay_epochs = decay_epochs
        self.factor = factor
        self.bad_epochs = 0
        self.decayed = 0

    def after_epoch(self, improved: bool) -> bool:
        """Returns True when training should stop."""
        if self.decayed == 0:
            self.bad_epochs = 0 if improved else self.bad_epochs + 1
            if self.bad_epochs < self.patience:
                return False
        if self.decayed >= self.decay_epochs:
            return True
        self.decayed += 1
        for group in self.optimizer.param_groups:
            group["lr"] *= self.factor
        return False

    def state_dict(self) -> dict[str, int]:
        return {"bad_epochs": self.bad_epochs, "decayed": self.decayed}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.bad_epochs = int(state["bad_epochs"])
        self.decayed = int(state["decayed"])


def build_schedule(optimizer: torch.optim.Optimizer, cfg: OptimConfig, patience: int) -> Schedule:
    decay = cfg.decay_epochs if cfg.schedule == ScheduleName.JOZEFOWICZ else 0
    return Schedule(optimizer, patience, decay, cfg.decay_factor)
