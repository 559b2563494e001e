"""Parameter layout of one layer-direction: which blocks exist, their shapes and their order.

The layout is derived from the spec once; the module, the initialisers, the parameter count,
the FLOP count and the fused-kernel packing all read it, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from ablate.cells.spec import (
    CellSpec,
    Gate,
    Recurrence,
    ResetPosition,
    Source,
    SpecError,
    StateKind,
)

BLOCK = "block"  # the LSTM block input z (torch calls it g)


@dataclass(frozen=True)
class Layout:
    """Row blocks of the stacked matrices, each block ``hidden_size`` rows.

    ``ih_rows``: blocks of ``weight_ih`` (W x); ``hh_rows``: blocks of ``weight_hh`` (R h);
    ``th_rows``: blocks of ``weight_th`` (R tanh(h), GRU family); ``bias_rows``: blocks of
    ``bias``; ``gg_rows``: gates fed back by full gate recurrence (``weight_gg`` is square
    over them); ``peepholes``: gates with a peephole vector; ``input_adapter``: whether raw x
    needs a learned projection because input_size != hidden_size; ``diagonal``: ``weight_hh``
    is IndRNN's vector u; ``heads``: ``weight_hh`` holds each gate's block-diagonal R as its
    heads' square blocks stacked, (rows x N / heads).
    """

    kind: StateKind
    input_size: int
    hidden_size: int
    ih_rows: tuple[str, ...]
    hh_rows: tuple[str, ...]
    th_rows: tuple[str, ...]
    bias_rows: tuple[str, ...]
    gg_rows: tuple[str, ...]
    peepholes: tuple[str, ...]
    input_adapter: bool
    recurrent_candidate_bias: bool
    diagonal: bool = False
    heads: int = 1

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter name -> shape, in registration order."""
        n, m = self.hidden_size, self.input_size
        out: dict[str, tuple[int, ...]] = {}
        if self.ih_rows:
            out["weight_ih"] = (len(self.ih_rows) * n, m)
        if self.input_adapter:
            out["weight_xp"] = (n, m)
        if self.diagonal:
            out["weight_hh"] = (n,)
        elif self.hh_rows:
            out["weight_hh"] = (len(self.hh_rows) * n, n // self.heads)
        if self.th_rows:
            out["weight_th"] = (len(self.th_rows) * n, n)
        if self.gg_rows:
            k = len(self.gg_rows) * n
            out["weight_gg"] = (k, k)
        out["bias"] = (len(self.bias_rows) * n,)
        if self.recurrent_candidate_bias:
            out["bias_hn"] = (n,)
        for gate in self.peepholes:
            out[f"peephole_{gate}"] = (n,)
        return out

    def num_parameters(self) -> int:
        total = 0
        for shape in self.shapes().values():
            size = 1
            for d in shape:
                size *= d
            total += size
        return total

    def matmul_flops(self, batch: int, steps: int) -> int:
        """Multiply-adds x 2 of the forward pass's matrix products (the dominant cost)."""
        per_step = sum(
            shape[0] * shape[1]
            for name, shape in self.shapes().items()
            if name.startswith("weight_") and len(shape) == 2
        )
        return 2 * batch * steps * per_step


def layout(spec: CellSpec, input_size: int, hidden_size: int) -> Layout:
    if input_size <= 0 or hidden_size <= 0:
        raise ValueError(
            f"sizes must be positive: input_size={input_size}, hidden_size={hidden_size}"
        )
    if spec.kind in (StateKind.LSTM, StateKind.SLSTM):
        if hidden_size % spec.heads:
            raise SpecError(
                f"cell spec {spec.name!r}: field 'heads': hidden_size {hidden_size} is not "
                f"divisible by heads={spec.heads}"
            )
        gates = [str(g) for g in spec.parametrized_gates]
        # torch.nn.LSTM's row order i, f, g, o, so the standard LSTM copies and fuses directly.
        rows = tuple(r for r in ("input", "forget", BLOCK, "output") if r == BLOCK or r in gates)
        return Layout(
            kind=spec.kind,
            input_size=input_size,
            hidden_size=hidden_size,
            ih_rows=rows,
            hh_rows=rows if spec.recurrence is Recurrence.FULL else (),
            th_rows=(),
            bias_rows=rows,
            gg_rows=tuple(gates) if spec.full_gate_recurrence else (),
            peepholes=tuple(
                str(g) for g in (Gate.INPUT, Gate.FORGET, Gate.OUTPUT) if g in spec.peepholes
            ),
            input_adapter=False,
            recurrent_candidate_bias=False,
            heads=spec.heads,
        )
    if spec.kind is StateKind.GRU:
        # torch.nn.GRU's row order r, z, n; a cell without R h in its candidate has no r.
        parts = tuple(p for p in ("reset", "update", "candidate") if spec.sources.get(p))
        raw = any(s in (Source.X, Source.TANH_X) for p in parts for s in spec.sources[p])
        return Layout(
            kind=spec.kind,
            input_size=input_size,
            hidden_size=hidden_size,
            ih_rows=tuple(p for p in parts if Source.WX in spec.sources[p]),
            hh_rows=tuple(p for p in parts if Source.RH in spec.sources[p]),
            th_rows=tuple(p for p in parts if Source.R_TANH_H in spec.sources[p]),
            bias_rows=parts,
            gg_rows=(),
            peepholes=(),
            input_adapter=raw and input_size != hidden_size,
            recurrent_candidate_bias=spec.reset is ResetPosition.AFTER,
        )
    return Layout(
        kind=spec.kind,
        input_size=input_size,
        hidden_size=hidden_size,
        ih_rows=(BLOCK,),
        hh_rows=(BLOCK,),
        th_rows=(),
        bias_rows=(BLOCK,),
        gg_rows=(),
        peepholes=(),
        input_adapter=False,
        recurrent_candidate_bias=False,
        diagonal=spec.recurrence is Recurrence.DIAGONAL,
    )
