"""Layouts of K trials' tensors trained as one (see :mod:`ablate.stack`).

The kernels take a batch of K trials' rows, (T, K B, F), time-major like every other call;
weight products want each trial's rows together, (K, T B, F). With ``trials`` 0 (one model,
unstacked weights) the same functions give the (T B, F) view the unstacked products use.
"""

from __future__ import annotations

from torch import Tensor


def trial_major(t: Tensor, trials: int) -> Tensor:
    """(T, K B, F) -> (K, T B, F); (T, B, F) -> (T B, F) where ``trials`` is 0."""
    if not trials:
        return t.reshape(-1, t.shape[-1])
    steps, rows, features = t.shape
    return (
        t.view(steps, trials, rows // trials, features)
        .transpose(0, 1)
        .reshape(trials, -1, features)
    )


def time_major(t: Tensor, steps: int, trials: int) -> Tensor:
    """The inverse of :func:`trial_major`."""
    if not trials:
        return t.view(steps, -1, t.shape[-1])
    features = t.shape[-1]
    return t.view(trials, steps, -1, features).transpose(0, 1).reshape(steps, -1, features)


def times_transposed(x: Tensor, w: Tensor) -> Tensor:
    """x W^T for one model, or each trial's x_k W_k^T."""
    return x @ w.transpose(-1, -2)


def outer_sum(grad: Tensor, x: Tensor, trials: int) -> Tensor:
    """The gradient of W in W x_t summed over every step and row: sum_t,b grad x^T, per
    trial where stacked."""
    return trial_major(grad, trials).transpose(-1, -2) @ trial_major(x, trials)
