"""Initialisation schemes, applied block by block so each gate's matrix gets its own draw."""

from __future__ import annotations

import math
from enum import StrEnum

import torch
from torch import Tensor, nn

from ablate.cells.layout import Layout


class InitScheme(StrEnum):
    UNIFORM = "uniform"  # Jozefowicz: U(-scale/sqrt(N), scale/sqrt(N)), zero biases
    TORCH = "torch"  # torch.nn.LSTM/GRU's default: every tensor U(-1/sqrt(N), 1/sqrt(N))
    XAVIER_ORTHOGONAL = "xavier_orthogonal"  # Xavier W, orthogonal R, per gate; zero biases


def initialise(
    params: dict[str, nn.Parameter],
    lay: Layout,
    scheme: InitScheme,
    scale: float,
    forget_bias: float,
) -> None:
    """Draw every parameter of one layer-direction, then add ``forget_bias`` to the forget rows.

    Adding (not setting) keeps the torch scheme's random bias intact at forget_bias = 0.
    """
    n = lay.hidden_size
    bound = scale / math.sqrt(n)
    with torch.no_grad():
        for name, p in params.items():
            if scheme is InitScheme.TORCH:
                nn.init.uniform_(p, -1.0 / math.sqrt(n), 1.0 / math.sqrt(n))
            elif name.startswith("bias"):
                nn.init.zeros_(p)
            elif scheme is InitScheme.UNIFORM:
                nn.init.uniform_(p, -bound, bound)
            elif name.startswith("peephole"):
                nn.init.zeros_(p)
            elif name in ("weight_ih", "weight_xp"):
                for block in _blocks(p, n):
                    nn.init.xavier_uniform_(block, gain=scale)
            else:
                for block in _blocks(p, n):
                    nn.init.orthogonal_(block, gain=scale)
        if forget_bias and "forget" in lay.bias_rows:
            k = lay.bias_rows.index("forget")
            params["bias"][k * n : (k + 1) * n].add_(forget_bias)


def _blocks(p: Tensor, n: int) -> list[Tensor]:
    """Square-ish N-row (and, for gate-to-gate matrices, N-column) blocks of a stacked matrix."""
    rows = p.split(n, dim=0)
    if p.shape[1] % n == 0 and p.shape[1] > n and p.shape[0] == p.shape[1]:
        return [b for r in rows for b in r.split(n, dim=1)]
    return list(rows)
