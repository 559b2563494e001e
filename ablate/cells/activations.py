"""Activation functions by the names cell specs use."""

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

Activation = Callable[[Tensor], Tensor]

ACTIVATION_FUNCTIONS: dict[str, Activation] = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
    "relu": torch.relu,
    "hardtanh": F.hardtanh,
    "softsign": F.softsign,
    "hardsigmoid": F.hardsigmoid,
}


def activation(name: str) -> Activation:
    return ACTIVATION_FUNCTIONS[name]
