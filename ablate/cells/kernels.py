"""The fast path: each layer-direction's whole time loop as one call of the C++ kernels
(``torch.ops.ablate``, built by :mod:`ablate.cells.compiled`) with a hand-written backward,
instead of autograd through every op of every step.

This module resolves a spec into the kernels' integer config once, and wraps the kernels in
autograd Functions whose backward does what is cheaper as a few large operations: each
weight's gradient, and the input's, as one matrix product over all steps after the loop. The
LSTM and Elman kernels project each step's input themselves, so no (T, B, G N) projection is
ever stored apart from the activations; the GRU family's folded projection (its gates may see
x, tanh(x) or W x) is computed before the loop.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ablate.cells.layout import BLOCK, Layout
from ablate.cells.scan import Padding, Params, Scan, State, first_rows
from ablate.cells.spec import (
    CellSpec,
    CellValue,
    Gate,
    Recurrence,
    ResetPosition,
    Source,
    StateKind,
    UpdateSide,
)
from ablate.cells.trials import outer_sum, time_major, trial_major

# Activation codes, the order of csrc/kernels.h's enum Act.
ACTIVATIONS = ("tanh", "sigmoid", "identity", "relu", "hardtanh", "softsign", "hardsigmoid")
_CODE = {name: k for k, name in enumerate(ACTIVATIONS)}
_PEEP = {None: 0, CellValue.PREV: 1, CellValue.NEW: 2}
# GRUConfig: the candidate's form (enum Candidate), and two entries' positions.
_INPUT_ONLY, _RESET_AFTER, _RESET_BEFORE = 0, 1, 2
_CANDIDATE_FIRST, _CANDIDATE = 2, 5


def supports(spec: CellSpec) -> bool:
    """Whether the C++ kernels compute ``spec``: they cover the Greff and Jozefowicz cell
    space and the sLSTM; IndRNN's u, minLSTM's normalised gates, gates from x alone and a GRU
    without a reset gate run in torch (the parallel scan or the reference loop)."""
    if spec.kind is StateKind.LSTM:
        return spec.recurrence is Recurrence.FULL and not spec.normalized
    if spec.kind is StateKind.GRU:
        return bool(spec.sources.get("reset"))
    if spec.kind is StateKind.SLSTM:
        return True
    return spec.kind is StateKind.ELMAN and spec.recurrence is Recurrence.FULL


def lstm_config(spec: CellSpec, lay: Layout) -> list[int]:
    """Block of each gate in the stacked pre-activation (-1: absent), coupling, peepholes and
    activations; the order of csrc/kernels.h's LSTMConfig."""
    rows = {name: k for k, name in enumerate(lay.hh_rows)}
    return [
        rows.get("input", -1),
        rows.get("forget", -1),
        rows[BLOCK],
        rows.get("output", -1),
        int(spec.coupled),
        *(_PEEP[spec.gate_peephole(g)] for g in (Gate.INPUT, Gate.FORGET, Gate.OUTPUT)),
        _CODE[spec.block_activation],
        _CODE[spec.output_activation],
        _CODE[spec.gate_activation],
        _CODE[spec.output_gate_activation],
    ]


def gru_config(spec: CellSpec, lay: Layout) -> list[int]:
    """Where each gate's recurrent term comes from, the candidate's form, the update side and
    the activations; the order of csrc/kernels.h's GRUConfig."""
    after = spec.reset is ResetPosition.AFTER
    first = {name: k for k, name in enumerate(first_rows(spec, lay))}
    th = {name: k for k, name in enumerate(lay.th_rows)}
    candidate = _INPUT_ONLY
    if Source.RH in spec.sources["candidate"]:
        candidate = _RESET_AFTER if after else _RESET_BEFORE
    return [
        first.get("reset", -1),
        first.get("update", -1),
        first.get("candidate", -1),
        th.get("reset", -1),
        th.get("update", -1),
        candidate,
        int(spec.update_side is UpdateSide.NEW),
        _CODE[spec.gate_activation],
        _CODE[spec.block_activation],
    ]


def slstm_config(spec: CellSpec) -> list[int]:
    """The order of csrc/kernels.h's SLSTMConfig."""
    return [
        _CODE[spec.block_activation],
        _CODE[spec.output_gate_activation],
        int(spec.forget_activation == "exp"),
    ]


def block_diagonal(weight_hh: Tensor, heads: int) -> Tensor:
    """The sLSTM's R, (4 N, N / heads) by head, as the dense (4 N, N) matrix the kernels
    multiply by (zeros off the heads' blocks; leading trial dimensions kept)."""
    size = weight_hh.shape[-1]
    blocks = weight_hh.reshape(*weight_hh.shape[:-2], 4, heads, size, size)
    eye = torch.eye(heads, dtype=weight_hh.dtype, device=weight_hh.device)
    dense = torch.einsum("...ghoi,hk->...ghoki", blocks, eye)
    return dense.reshape(*weight_hh.shape[:-2], 4 * heads * size, heads * size)


def _zeros_if_none(grad: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if grad is None else grad.contiguous()


def _input_grads(
    grad_pre: Tensor, x: Tensor, w_ih: Tensor, trials: int
) -> tuple[Tensor, Tensor, Tensor]:
    """The gradients of x, W and b in W x_t + b, from those of the pre-activations."""
    flat = trial_major(grad_pre, trials)
    grad_x = time_major(flat @ w_ih, x.shape[0], trials)
    return grad_x, outer_sum(grad_pre, x, trials), flat.sum(-2)


class _LSTMLoop(torch.autograd.Function):
    """Outputs every step's h, the last c, and (full gate recurrence) the last step's fed-back
    gate activations, which the next call's ``a0`` continues from; (B, 0) without it.
    ``trials``: 0, or the K trials whose stacked weights (K, ...) the call computes at once."""

    @staticmethod
    def forward(ctx: Any, config: list[int], lengths: Tensor | None, x: Tensor, w_ih: Tensor,
                bias: Tensor, h0: Tensor, c0: Tensor, a0: Tensor | None, w_hh: Tensor,
                w_gg: Tensor | None, p_in: Tensor | None, p_fg: Tensor | None,
                p_out: Tensor | None, trials: int) -> Any:
        h, c, act, fed = torch.ops.ablate.lstm_forward(
            x, w_ih, bias, h0, c0, a0, w_hh, w_gg, p_in, p_fg, p_out, lengths, config, True,
            trials,
        )
        ctx.config, ctx.has_a0, ctx.trials = config, a0 is not None, trials
        ctx.save_for_backward(x, h, c, act, fed, lengths, w_ih, w_hh, w_gg, p_in, p_fg, p_out)
        a_last = fed[-1] if w_gg is not None else h.new_empty(h.shape[1], 0)
        if w_gg is None:
            ctx.mark_non_differentiable(a_last)
        return h[1:], c[-1], a_last

    @staticmethod
    @once_differentiable  # the backward kernels are not differentiable themselves
    def backward(ctx: Any, grad_h: Tensor | None, grad_c: Tensor | None,
                 grad_a: Tensor | None) -> Any:
        x, h, c, act, fed, lengths, w_ih, w_hh, w_gg, p_in, p_fg, p_out = ctx.saved_tensors
        grad_a_last = None if w_gg is None else _zeros_if_none(grad_a, fed[-1])
        grad_pre, grad_h0, grad_c0, grad_peep, grad_fed, grad_a0 = torch.ops.ablate.lstm_backward(
            _zeros_if_none(grad_h, h[1:]), _zeros_if_none(grad_c, c[-1]), grad_a_last, c, act,
            w_hh, w_gg, p_in, p_fg, p_out, lengths, ctx.config, ctx.trials,
        )
        trials = ctx.trials
        grad_w_hh = outer_sum(grad_pre, h[:-1], trials)
        grad_w_gg = None if w_gg is None else outer_sum(grad_fed, fed[:-1], trials)
        grad_peeps = [g if p is not None else None
                      for g, p in zip(grad_peep.unbind(-2), (p_in, p_fg, p_out), strict=True)]
        return (None, None, *_input_grads(grad_pre, x, w_ih, trials), grad_h0, grad_c0,
                grad_a0 if ctx.has_a0 else None, grad_w_hh, grad_w_gg, *grad_peeps, None)


class _GRULoop(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, config: list[int], lengths: Tensor | None, xp: Tensor,
                h0: Tensor, w_first: Tensor | None, w_candidate: Tensor | None,
                w_th: Tensor | None, bias_hn: Tensor | None, trials: int) -> Tensor:
        h, act, aux, th = torch.ops.ablate.gru_forward(
            xp, h0, w_first, w_candidate, w_th, bias_hn, lengths, config, True, trials
        )
        ctx.config, ctx.has_bias_hn, ctx.trials = config, bias_hn is not None, trials
        ctx.save_for_backward(h, act, aux, th, lengths, w_first, w_candidate, w_th)
        return h[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_h: Tensor) -> Any:
        h, act, aux, th, lengths, w_first, w_candidate, w_th = ctx.saved_tensors
        n = h.shape[-1]
        grad_xp, grad_first, grad_th, grad_h0 = torch.ops.ablate.gru_backward(
            grad_h.contiguous(), h, act, aux, th, w_first, w_candidate, w_th, lengths, ctx.config,
            ctx.trials,
        )
        trials = ctx.trials
        grad_w_first = None if w_first is None else outer_sum(grad_first, h[:-1], trials)
        grad_w_candidate = (
            None if w_candidate is None else outer_sum(grad_xp[..., 2 * n :], aux, trials)
        )
        grad_w_th = None if w_th is None else outer_sum(grad_th, th, trials)
        grad_bias_hn = None
        if ctx.has_bias_hn:
            k = ctx.config[_CANDIDATE_FIRST]
            grad_bias_hn = trial_major(grad_first[..., k * n : (k + 1) * n], trials).sum(-2)
        return (None, None, grad_xp, grad_h0, grad_w_first, grad_w_candidate, grad_w_th,
                grad_bias_hn, None)


class _ElmanLoop(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, activation: int, lengths: Tensor | None, x: Tensor, w_ih: Tensor,
                bias: Tensor, h0: Tensor, w_hh: Tensor, trials: int) -> Tensor:
        h = torch.ops.ablate.elman_forward(x, w_ih, bias, h0, w_hh, lengths, activation, trials)
        ctx.activation, ctx.trials = activation, trials
        ctx.save_for_backward(x, h, lengths, w_ih, w_hh)
        return h[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_h: Tensor) -> Any:
        x, h, lengths, w_ih, w_hh = ctx.saved_tensors
        grad_pre, grad_h0 = torch.ops.ablate.elman_backward(
            grad_h.contiguous(), h, w_hh, lengths, ctx.activation, ctx.trials
        )
        return (None, None, *_input_grads(grad_pre, x, w_ih, ctx.trials), grad_h0,
                outer_sum(grad_pre, h[:-1], ctx.trials), None)


class _SLSTMLoop(torch.autograd.Function):
    """Outputs every step's h and the last c, n and m."""

    @staticmethod
    def forward(ctx: Any, config: list[int], lengths: Tensor | None, x: Tensor, w_ih: Tensor,
                bias: Tensor, h0: Tensor, c0: Tensor, n0: Tensor, m0: Tensor, w_hh: Tensor,
                trials: int) -> Any:
        h, c, n, m, act = torch.ops.ablate.slstm_forward(
            x, w_ih, bias, h0, c0, n0, m0, w_hh, lengths, config, trials
        )
        ctx.config, ctx.trials = config, trials
        ctx.save_for_backward(x, h, c, n, m, act, lengths, w_ih, w_hh)
        return h[1:], c[-1], n[-1], m[-1]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_h: Tensor | None, grad_c: Tensor | None, grad_n: Tensor | None,
                 grad_m: Tensor | None) -> Any:
        x, h, c, n, m, act, lengths, w_ih, w_hh = ctx.saved_tensors
        grad_pre, grad_h0, grad_c0, grad_n0, grad_m0 = torch.ops.ablate.slstm_backward(
            _zeros_if_none(grad_h, h[1:]), _zeros_if_none(grad_c, c[-1]),
            _zeros_if_none(grad_n, n[-1]), _zeros_if_none(grad_m, m[-1]), h, c, n, m, act, w_hh,
            lengths, ctx.config, ctx.trials,
        )
        trials = ctx.trials
        return (None, None, *_input_grads(grad_pre, x, w_ih, trials), grad_h0, grad_c0, grad_n0,
                grad_m0, outer_sum(grad_pre, h[:-1], trials), None)


class KernelScan:
    """One layer-direction on the fast path, with the same ``run`` as the reference scan.

    States are held over padding, so the last step's state is each sequence's final one.
    """

    def __init__(self, spec: CellSpec, lay: Layout, scan: Scan) -> None:
        self._scan = scan  # the reference scan: the GRU family's projection is its own
        self._kind = spec.kind
        n = lay.hidden_size
        self._fed_back = bool(lay.gg_rows)
        self._heads = lay.heads
        if spec.kind is StateKind.LSTM:
            self._config = lstm_config(spec, lay)
        elif spec.kind is StateKind.SLSTM:
            self._config = slstm_config(spec)
        elif spec.kind is StateKind.GRU:
            self._config = gru_config(spec, lay)
            self._first = len(first_rows(spec, lay)) * n
        else:
            self._config = [_CODE[spec.block_activation]]

    def run(self, x: Tensor, state: State, params: Params, padding: Padding | None,
            trials: int = 0) -> tuple[Tensor, State]:
        """``trials`` 0: one model; K: x holds K trials' rows (T, K B, M), each parameter a
        leading K dimension (see :mod:`ablate.stack`)."""
        lengths = None if padding is None else padding.lengths
        states: list[Tensor | None] = [s.contiguous() for s in state]
        if self._kind is StateKind.LSTM and not self._fed_back:
            states.append(None)  # a0: no gate activations fed back
        inputs = [*self._project(x, params, trials), *states, *self._weights(params)]
        # Without a backward to come (inference), call the kernels directly: they then keep
        # one step's activations instead of all of them.
        train = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs)
        if self._kind is StateKind.LSTM:
            if train:
                hs, c_last, a_last = _LSTMLoop.apply(self._config, lengths, *inputs, trials)
            else:
                h, c, _, fed = torch.ops.ablate.lstm_forward(
                    *inputs, lengths, self._config, False, trials
                )
                hs, c_last, a_last = h[1:], c[-1], (fed[-1] if self._fed_back else None)
            final: State = (hs[-1], c_last, a_last) if self._fed_back else (hs[-1], c_last)
        elif self._kind is StateKind.SLSTM:
            if train:
                hs, *last = _SLSTMLoop.apply(self._config, lengths, *inputs, trials)
            else:
                h, *rest, _ = torch.ops.ablate.slstm_forward(
                    *inputs, lengths, self._config, trials
                )
                hs, last = h[1:], [s[-1] for s in rest]
            final = (hs[-1], *last)
        elif self._kind is StateKind.GRU:
            if train:
                hs = _GRULoop.apply(self._config, lengths, *inputs, trials)
            else:
                hs = torch.ops.ablate.gru_forward(
                    *inputs, lengths, self._config, False, trials
                )[0][1:]
            final = (hs[-1],)
        else:
            if train:
                hs = _ElmanLoop.apply(self._config[0], lengths, *inputs, trials)
            else:
                hs = torch.ops.ablate.elman_forward(
                    *inputs, lengths, self._config[0], trials
                )[1:]
            final = (hs[-1],)
        return (hs if padding is None else hs * padding.mask), final

    def _project(self, x: Tensor, params: Params, trials: int) -> list[Tensor]:
        """The input terms: the GRU family's folded projection of every step, computed before
        the loop, or x with W and b, which the LSTM and Elman kernels apply step by step."""
        if self._kind is StateKind.GRU:
            return [self._scan.project(x, params, trials).contiguous()]
        return [x.contiguous(), params["weight_ih"], params["bias"]]

    def _weights(self, params: Params) -> list[Tensor | None]:
        """The recurrent parameters in the kernels' argument order (a stacked trial's rows of
        weight_hh split into contiguous parts)."""
        if self._kind is StateKind.LSTM:
            names = ("weight_hh", "weight_gg", "peephole_input", "peephole_forget",
                     "peephole_output")
            return [params.get(name) for name in names]
        if self._kind is StateKind.SLSTM:
            return [block_diagonal(params["weight_hh"], self._heads).contiguous()]
        if self._kind is StateKind.GRU:
            w_hh = params.get("weight_hh")
            before = self._config[_CANDIDATE] == _RESET_BEFORE
            return [
                w_hh[..., : self._first, :].contiguous()
                if w_hh is not None and self._first else None,
                w_hh[..., self._first :, :].contiguous() if w_hh is not None and before else None,
                params.get("weight_th"),
                params.get("bias_hn"),
            ]
        return [params["weight_hh"]]
