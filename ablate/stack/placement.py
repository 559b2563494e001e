"""Where a trial's parameter sits inside the group's stacked parameter.

A parameter's dimension is either independent of the hidden size (the input features, the
vocabulary, the outputs), and then the same in every trial, or made of blocks of N (gates,
directions, fed-back activations), which the group pads to its largest N: block b of a trial
with N units starts at b * N_max.
"""

from __future__ import annotations

import torch
from torch import Tensor

Index = tuple[Tensor, ...] | None  # None: the trial fills the whole slot


def placement(shape: torch.Size, slot: torch.Size, n: int, n_max: int, name: str) -> Index:
    """Index into a trial's slot (the stacked parameter at its trial index) of every entry of
    its own parameter of ``shape``."""
    if tuple(shape) == tuple(slot):
        return None
    dims = len(shape)
    index = []
    for d, (size, padded) in enumerate(zip(shape, slot, strict=True)):
        j = torch.arange(size)
        if size != padded:
            if size % n or padded % n_max or size // n != padded // n_max:
                raise ValueError(
                    f"ablate.stack: parameter {name!r} of shape {tuple(shape)} does not pad to "
                    f"{tuple(slot)} by hidden size {n} -> {n_max}"
                )
            j = (j // n) * n_max + j % n
        index.append(j.view([-1 if e == d else 1 for e in range(dims)]))
    return tuple(index)


def put(slot: Tensor, value: Tensor, index: Index) -> None:
    if index is None:
        slot.copy_(value)
    else:
        slot[index] = value


def take(slot: Tensor, index: Index) -> Tensor:
    return slot if index is None else slot[index]
