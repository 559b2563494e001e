"""The parallel scan: cells whose gates and candidate see x alone (minGRU, minLSTM, any spec
with :attr:`CellSpec.parallel`) have a recurrence linear in the state, s_t = a_t * s_{t-1} + b_t,
so every step's a_t and b_t come from one pass over the whole sequence and the recurrence
itself from an associative scan, in ceil(log2 T) vectorised rounds instead of T steps.

The scan composes the affine maps in linear space (Hillis and Steele's inclusive scan).
Heinsen's log-space form, exp(cumsum log a) * (s_0 + cumsum(b / exp(cumsum log a))), needs the
log of a signed b and takes the difference of two sums that grow with T, which costs float32
digits on long sequences; products of gates in [0, 1] only ever shrink towards 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ablate.cells.activations import activation
from ablate.cells.layout import BLOCK, Layout
from ablate.cells.scan import Padding, Params, Scan, State
from ablate.cells.spec import CellSpec, Gate, StateKind, UpdateSide


def linear_scan(a: Tensor, b: Tensor, s0: Tensor) -> Tensor:
    """Every s_t of s_t = a_t * s_{t-1} + b_t (a, b: (T, ...); s0: a_t's shape without T).

    After the round of offset k, entry t holds the map from s_{t-2k} to s_t (from s_0 where
    t < 2k): composing it with entry t - k's doubles its reach."""
    k = 1
    while k < a.shape[0]:
        b = torch.cat([b[:k], torch.addcmul(b[k:], a[k:], b[:-k])])
        a = torch.cat([a[:k], a[k:] * a[:-k]])
        k *= 2
    return torch.addcmul(b, a, s0)


class ParallelScan:
    """One layer-direction by the parallel scan, with the reference scan's ``run``.

    Padded steps get a = 1 and b = 0, so the state holds over them as in the loop."""

    def __init__(self, spec: CellSpec, lay: Layout, scan: Scan) -> None:
        self._scan = scan  # the input projection is the reference scan's
        self._spec = spec
        self._n = lay.hidden_size
        self._rows = {name: k for k, name in enumerate(lay.ih_rows)}
        self._parts = lay.bias_rows

    def run(self, x: Tensor, state: State, params: Params,
            padding: Padding | None) -> tuple[Tensor, State]:
        projected = self._scan.project(x, self._scan.prepare(params))
        chunks = projected.split(self._n, dim=-1)
        if self._spec.kind is StateKind.GRU:
            a, b = self._gru(dict(zip(self._parts, chunks, strict=True)))
        else:
            a, b = self._lstm(chunks)
        if padding is not None:
            a = torch.where(padding.mask, a, 1.0)
            b = torch.where(padding.mask, b, 0.0)
        s0 = state[-1]  # the GRU family's h; the LSTM family's c
        s = linear_scan(a, b, s0)
        if self._spec.kind is StateKind.GRU:
            out = s
            final: State = (s[-1],)
        else:
            out = self._output(s, chunks)
            final = (_last(out, padding), s[-1])
        return (out if padding is None else out * padding.mask), final

    def _gru(self, parts: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """h_t = z * h~ + (1 - z) * h_{t-1} (update side new), or z on the old state."""
        z = activation(self._spec.gate_activation)(parts["update"])
        candidate = activation(self._spec.block_activation)(parts["candidate"])
        if self._spec.update_side is UpdateSide.NEW:
            return 1.0 - z, z * candidate
        return z, (1.0 - z) * candidate

    def _lstm(self, chunks: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        """c_t = f * c_{t-1} + g(z) * i, with absent gates 1, coupled or normalised."""
        spec = self._spec
        gate = activation(spec.gate_activation)
        z = activation(spec.block_activation)(chunks[self._rows[BLOCK]])
        i = gate(chunks[self._rows["input"]]) if Gate.INPUT in spec.gates else None
        if spec.coupled:
            assert i is not None
            f = 1.0 - i
        elif Gate.FORGET in spec.gates:
            f = gate(chunks[self._rows["forget"]])
        else:
            f = torch.ones_like(z)
        if spec.normalized:
            assert i is not None
            i, f = i / (i + f), f / (i + f)
        return f, z if i is None else z * i

    def _output(self, c: Tensor, chunks: tuple[Tensor, ...]) -> Tensor:
        h = activation(self._spec.output_activation)(c)
        if Gate.OUTPUT in self._spec.gates:
            h = h * activation(self._spec.output_gate_activation)(chunks[self._rows["output"]])
        return h


def _last(out: Tensor, padding: Padding | None) -> Tensor:
    """Each sequence's output at its last real step."""
    if padding is None:
        return out[-1]
    index = (padding.lengths - 1).view(1, -1, 1).expand(1, *out.shape[1:])
    return out.gather(0, index)[0]
