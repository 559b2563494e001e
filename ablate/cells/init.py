"""Initialisation schemes, applied block by block so each gate's matrix gets its own draw."""

from __future__ import annotations

import math
from enum import StrEnum

import torch
from torch import Tensor, nn

from ablate.cells.layout import Layout


class InitScheme(StrEnum):
    UNIFORM = "uniform"  # Jozefowicz: U(-scale/sqrt(N), scale/sqrt(N)), zero biases
    # torch.nn.LSTM/GRU/RNN's default as the cell sees it: every weight U(-1/sqrt(N), 1/sqrt(N)),
    # every bias the sum of torch's two, b_ih + b_hh (see _torch_bias).
    TORCH = "torch"
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
    IndRNN's u is drawn from U(0, 1) under every scheme, as Li et al. do: the schemes are
    about matrices, and a negative or tiny u would start the unit without memory.
    """
    n = lay.hidden_size
    bound = scale / math.sqrt(n)
    with torch.no_grad():
        for name, p in params.items():
            if lay.diagonal and name == "weight_hh":
                nn.init.uniform_(p, 0.0, 1.0)
            elif scheme is InitScheme.TORCH and name == "bias":
                _torch_bias(p, lay)
            elif scheme is InitScheme.TORCH:
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
            else:  # per gate, and per head where R is block-diagonal
                for block in _blocks(p, min(n, p.shape[1])):
                    nn.init.orthogonal_(block, gain=scale)
        if forget_bias and "forget" in lay.bias_rows:
            k = lay.bias_rows.index("forget")
            params["bias"][k * n : (k + 1) * n].add_(forget_bias)


def _torch_bias(bias: Tensor, lay: Layout) -> None:
    """torch's modules draw b_ih and b_hh, each U(+-1/sqrt(N)), and every pre-activation adds
    both: its distribution is their sum (triangular, variance 2/(3N)), not one draw. Where the
    recurrent bias stays apart (``bias_hn``, torch's b_hn inside r * (R h + b_hn)), the
    candidate's row is torch's b_in alone, and ``bias_hn`` one draw of its own."""
    n = lay.hidden_size
    bound = 1.0 / math.sqrt(n)
    nn.init.uniform_(bias, -bound, bound)
    second = torch.empty_like(bias).uniform_(-bound, bound)
    if lay.recurrent_candidate_bias:
        k = lay.bias_rows.index("candidate")
        second[k * n : (k + 1) * n] = 0.0
    bias.add_(second)


def _blocks(p: Tensor, n: int) -> list[Tensor]:
    """Square-ish N-row (and, for gate-to-gate matrices, N-column) blocks of a stacked matrix."""
    rows = p.split(n, dim=0)
    if p.shape[1] % n == 0 and p.shape[1] > n and p.shape[0] == p.shape[1]:
        return [b for r in rows for b in r.split(n, dim=1)]
    return list(rows)
