"""Reference time loops, one per state kind, with autograd through every op.

Each ``*Scan`` is built once from the spec: absent gates, peepholes and sources are resolved
into small closures here, so the time step runs straight-line code with no branching on the
spec. Input projections arrive precomputed for all time steps (one matmul before the loop) and
are split with ``unbind(0)``: indexing ``x[t]`` inside an autograd loop builds a full
zero-filled gradient per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from ablate.cells.activations import activation
from ablate.cells.layout import BLOCK, Layout
from ablate.cells.spec import CellSpec, CellValue, Gate, ResetPosition, Source, UpdateSide
from ablate.cells.trials import time_major, times_transposed, trial_major

Params = dict[str, Tensor]
State = tuple[Tensor, ...]


@dataclass(frozen=True)
class Padding:
    """A batch of sequences of different lengths, in the forms the time loops need."""

    lengths: Tensor  # (B,) int64
    mask: Tensor  # (T, B, 1) bool: whether step t of sequence b is real
    reverse_index: Tensor  # (T, B): step t of the reversed sequence b reads step len-1-t

    @classmethod
    def of(cls, lengths: Tensor, steps: int, device: torch.device) -> Padding:
        lengths = lengths.to(device=device, dtype=torch.long).contiguous()
        t = torch.arange(steps, device=device).unsqueeze(1)
        real = t < lengths.unsqueeze(0)
        return cls(lengths, real.unsqueeze(-1), torch.where(real, lengths - 1 - t, t))


def _run(
    step: Callable[[Tensor, State, Params], State],
    inputs: Tensor,
    state: State,
    params: Params,
    mask: Tensor | None,
) -> tuple[Tensor, State]:
    """Loop ``step`` over time; outputs are each step's h (the first state), zero where padded.

    With a mask, every state is held at padded steps, so each sequence's final state is the
    one of its last real step.
    """
    outputs = []
    if mask is None:
        for x_t in inputs.unbind(0):
            state = step(x_t, state, params)
            outputs.append(state[0])
        return torch.stack(outputs), state
    for x_t, m_t in zip(inputs.unbind(0), mask.unbind(0), strict=True):
        new = step(x_t, state, params)
        state = tuple(torch.where(m_t, n, o) for n, o in zip(new, state, strict=True))
        outputs.append(state[0])
    return torch.stack(outputs) * mask, state


GateFn = Callable[[tuple[Tensor, ...], Tensor, Tensor | None, Tensor | None, Params], Tensor | None]


def _absent(chunks: Any, c_prev: Any, c_new: Any, i: Any, p: Any) -> None:
    return None


class Scan:
    """A time loop for one layer-direction: ``prepare`` the parameters once per call,
    ``project`` the whole input sequence before the loop, then run the loop."""

    _step: Callable[[Tensor, State, Params], State]

    def prepare(self, params: Params) -> Params:
        p = dict(params)
        if "weight_hh" in p:
            p["weight_hh_t"] = p["weight_hh"].t()
        if "weight_gg" in p:
            p["weight_gg_t"] = p["weight_gg"].t()
        return p

    def project(self, x: Tensor, p: Params) -> Tensor:
        steps, batch, _ = x.shape
        xw = torch.addmm(p["bias"], x.reshape(steps * batch, -1), p["weight_ih"].t())
        return xw.view(steps, batch, -1)

    def run(
        self, x: Tensor, state: State, params: Params, padding: Padding | None
    ) -> tuple[Tensor, State]:
        """The layer-direction on input x (T, B, M): outputs (zero where padded), final state."""
        p = self.prepare(params)
        return self(self.project(x, p), state, p, None if padding is None else padding.mask)

    def __call__(
        self, projected: Tensor, state: State, params: Params, mask: Tensor | None
    ) -> tuple[Tensor, State]:
        return _run(self._step, projected, state, params, mask)


_CELL_UPDATES: dict[tuple[bool, bool], Callable[[Tensor, Any, Tensor, Any], Tensor]] = {
    (True, True): lambda z, i, c, f: torch.addcmul(c * f, z, i),
    (True, False): lambda z, i, c, f: torch.addcmul(c, z, i),
    (False, True): lambda z, i, c, f: torch.addcmul(z, c, f),
    (False, False): lambda z, i, c, f: z + c,
}


class LSTMScan(Scan):
    """c_t = g(z) * i + c_{t-1} * f;  h_t = k(c_t) * o, with any gate absent, coupled, peeping
    or normalised, and R h_{t-1} absent with recurrence 'none'.

    The loop carries (h, c, a): ``a`` holds the previous activations of the gates that full
    gate recurrence feeds back, in layout order (a (B, 0) tensor without it).
    """

    def __init__(self, spec: CellSpec, lay: Layout) -> None:
        n = lay.hidden_size
        rows = {name: k for k, name in enumerate(lay.ih_rows)}
        block_row = rows[BLOCK]
        block = activation(spec.block_activation)
        squash = activation(spec.output_activation)

        def gate(name: str, act_name: str) -> GateFn:
            if name not in rows:
                return _absent
            k, act = rows[name], activation(act_name)
            seen = spec.gate_peephole(Gate(name))
            key = f"peephole_{name}"
            if seen is None:
                return lambda chunks, c_prev, c_new, i, p: act(chunks[k])
            if seen is CellValue.PREV:
                return lambda chunks, c_prev, c_new, i, p: act(
                    torch.addcmul(chunks[k], p[key], c_prev)
                )
            return lambda chunks, c_prev, c_new, i, p: act(torch.addcmul(chunks[k], p[key], c_new))

        input_gate = gate("input", spec.gate_activation)
        forget_gate: GateFn = (
            (lambda chunks, c_prev, c_new, i, p: 1.0 - i)
            if spec.coupled
            else gate("forget", spec.gate_activation)
        )
        output_gate = gate("output", spec.output_gate_activation)
        update = _CELL_UPDATES[Gate.INPUT in spec.gates, Gate.FORGET in spec.gates]
        normalise: Callable[[Any, Any], tuple[Any, Any]] = (
            (lambda i, f: (i / (i + f), f / (i + f))) if spec.normalized else (lambda i, f: (i, f))
        )
        recurrent: Callable[[Tensor, Tensor, Params], Tensor] = (
            (lambda xw_t, h, p: torch.addmm(xw_t, h, p["weight_hh_t"]))
            if lay.hh_rows
            else (lambda xw_t, h, p: xw_t)
        )
        output: Callable[[Tensor, Any], Tensor] = (
            (lambda c, o: squash(c) * o) if Gate.OUTPUT in spec.gates else (lambda c, o: squash(c))
        )

        fed_back = [rows[g] for g in lay.gg_rows]
        fed_back_names = set(lay.gg_rows)
        if fed_back:

            def recur(chunks: tuple[Tensor, ...], a: Tensor, p: Params) -> tuple[Tensor, ...]:
                extra = torch.mm(a, p["weight_gg_t"]).split(n, dim=1)
                out = list(chunks)
                for k, e in zip(fed_back, extra, strict=True):
                    out[k] = out[k] + e
                return tuple(out)

            order = [g for g in ("input", "forget", "output") if g in fed_back_names]
            pick = {"input": 0, "forget": 1, "output": 2}
            idx = [pick[g] for g in order]

            def collect(i: Any, f: Any, o: Any, a: Tensor) -> Tensor:
                acts = (i, f, o)
                return torch.cat([acts[k] for k in idx], dim=1)

        else:

            def recur(chunks: tuple[Tensor, ...], a: Tensor, p: Params) -> tuple[Tensor, ...]:
                return chunks

            def collect(i: Any, f: Any, o: Any, a: Tensor) -> Tensor:
                return a

        def step(xw_t: Tensor, state: State, p: Params) -> State:
            h, c, a = state
            chunks = recur(recurrent(xw_t, h, p).split(n, dim=1), a, p)
            i = input_gate(chunks, c, None, None, p)
            i, f = normalise(i, forget_gate(chunks, c, None, i, p))
            c_new = update(block(chunks[block_row]), i, c, f)
            o = output_gate(chunks, c, c_new, None, p)
            return output(c_new, o), c_new, collect(i, f, o, a)

        self._step = step
        self._fed_back = len(fed_back) * n

    def __call__(
        self, projected: Tensor, state: State, params: Params, mask: Tensor | None
    ) -> tuple[Tensor, State]:
        """``state`` is (h, c), or with full gate recurrence (h, c, a): the gates' activations
        are state like h and c, handed in and returned so the next call goes on from them."""
        if self._fed_back:
            return _run(self._step, projected, state, params, mask)
        h, c = state
        none = h.new_zeros(h.shape[0], 0)
        out, (h, c, _) = _run(self._step, projected, (h, c, none), params, mask)
        return out, (h, c)


class GRUScan(Scan):
    """h_t = mix(h, h~, z) with per-spec sources, reset before or after R, and update side.

    ``project`` folds every input-only term (W x, raw x, tanh(x), biases) of the reset gate,
    update gate and candidate into one (T, B, 3N) tensor before the loop.
    """

    def __init__(self, spec: CellSpec, lay: Layout) -> None:
        n = lay.hidden_size
        parts = lay.bias_rows  # without a reset gate: update and candidate
        ih = {name: k for k, name in enumerate(lay.ih_rows)}
        self._input_terms = [
            [_input_term(src, ih.get(part)) for src in spec.sources[part] if _is_input(src)]
            for part in parts
        ]
        self._adapter = lay.input_adapter
        self._hidden = n
        gate_act = activation(spec.gate_activation)
        block = activation(spec.block_activation)

        after = spec.reset is ResetPosition.AFTER
        first = first_rows(spec, lay)
        self._first_rows = len(first)
        h_rows = {name: k for k, name in enumerate(first)}
        th_rows = {name: k for k, name in enumerate(lay.th_rows)}

        def pre(part: str) -> Callable[[Tensor, tuple[Tensor, ...], tuple[Tensor, ...]], Tensor]:
            if part in h_rows:
                k = h_rows[part]
                return lambda x, hc, tc: x + hc[k]
            if part in th_rows:
                k = th_rows[part]
                return lambda x, hc, tc: x + tc[k]
            return lambda x, hc, tc: x

        reset_pre, update_pre = pre("reset"), pre("update")
        reset = (lambda x, hc, tc: gate_act(reset_pre(x, hc, tc))) if "reset" in parts else None
        rec_h: Callable[[Tensor, Params], tuple[Tensor, ...]] = (
            (lambda h, p: torch.mm(h, p["weight_hh_first_t"]).split(n, dim=1))
            if first
            else (lambda h, p: ())
        )
        rec_th: Callable[[Tensor, Params], tuple[Tensor, ...]] = (
            (lambda h, p: torch.mm(torch.tanh(h), p["weight_th_t"]).split(n, dim=1))
            if lay.th_rows
            else (lambda h, p: ())
        )
        if Source.RH not in spec.sources["candidate"]:
            candidate: Callable[..., Tensor] = lambda xn, r, h, hc, p: xn  # noqa: E731
        elif after:
            kc = h_rows["candidate"]
            candidate = lambda xn, r, h, hc, p: torch.addcmul(  # noqa: E731
                xn, r, hc[kc] + p["bias_hn"]
            )
        else:
            candidate = lambda xn, r, h, hc, p: torch.addmm(  # noqa: E731
                xn, r * h, p["weight_hh_candidate_t"]
            )
        # torch.lerp(a, b, w) = a + w * (b - a)
        mix: Callable[[Tensor, Tensor, Tensor], Tensor] = (
            (lambda h, cand, z: torch.lerp(cand, h, z))
            if spec.update_side is UpdateSide.OLD
            else (lambda h, cand, z: torch.lerp(h, cand, z))
        )

        def step(x_t: Tensor, state: State, p: Params) -> State:
            (h,) = state
            *xr, xz, xn = x_t.split(n, dim=1)
            hc, tc = rec_h(h, p), rec_th(h, p)
            r = reset(xr[0], hc, tc) if reset is not None else None
            z = gate_act(update_pre(xz, hc, tc))
            return (mix(h, block(candidate(xn, r, h, hc, p)), z),)

        self._step = step

    def prepare(self, params: Params) -> Params:
        p = dict(params)
        n = self._hidden
        if "weight_hh" in p:
            k = self._first_rows * n
            p["weight_hh_first_t"] = p["weight_hh"][:k].t()
            p["weight_hh_candidate_t"] = p["weight_hh"][k:].t()
        if "weight_th" in p:
            p["weight_th_t"] = p["weight_th"].t()
        return p

    def project(self, x: Tensor, p: Params, trials: int = 0) -> Tensor:
        """Every step's input terms, (T, B, parts N); with ``trials`` K, x holds K trials'
        rows and each parameter a leading K dimension (the C++ kernels' stacked calls)."""
        x2 = trial_major(x, trials)
        n = self._hidden
        wx = times_transposed(x2, p["weight_ih"]).split(n, dim=-1) if "weight_ih" in p else ()
        raw = times_transposed(x2, p["weight_xp"]) if self._adapter else x2
        parts = []
        for terms, b in zip(self._input_terms, p["bias"].split(n, dim=-1), strict=True):
            total = b.unsqueeze(-2).expand(*x2.shape[:-1], n)
            for term in terms:
                total = total + term(wx, raw)
            parts.append(total)
        return time_major(torch.cat(parts, dim=-1), x.shape[0], trials)



def first_rows(spec: CellSpec, lay: Layout) -> tuple[str, ...]:
    """Rows of a GRU's weight_hh multiplied by h_{t-1} at the start of a step: the gates',
    and the candidate's when the reset gate applies after R (before R, it waits for r)."""
    after = spec.reset is ResetPosition.AFTER
    return tuple(r for r in lay.hh_rows if r != "candidate" or after)


def _is_input(src: Source) -> bool:
    return src in (Source.WX, Source.X, Source.TANH_X)


def _input_term(src: Source, row: int | None) -> Callable[[tuple[Tensor, ...], Tensor], Tensor]:
    if src is Source.WX:
        assert row is not None
        return lambda wx, raw: wx[row]
    if src is Source.X:
        return lambda wx, raw: raw
    return lambda wx, raw: torch.tanh(raw)


class ElmanScan(Scan):
    """h_t = act(W x_t + R h_{t-1} + b), or IndRNN's act(W x_t + u * h_{t-1} + b)."""

    def __init__(self, spec: CellSpec, lay: Layout) -> None:
        act = activation(spec.block_activation)

        if lay.diagonal:

            def step(xw_t: Tensor, state: State, p: Params) -> State:
                return (act(torch.addcmul(xw_t, state[0], p["weight_hh"])),)

        else:

            def step(xw_t: Tensor, state: State, p: Params) -> State:
                return (act(torch.addmm(xw_t, state[0], p["weight_hh_t"])),)

        self._step = step


class SLSTMScan(Scan):
    """xLSTM's sLSTM; the state is (h, c, n, m). With the stabiliser m, exp(m_t) times c_t and
    n_t are the unstabilised cell and normaliser, so h = o * c / n does not depend on m: m only
    keeps exp(i~) in range."""

    def __init__(self, spec: CellSpec, lay: Layout) -> None:
        n, heads = lay.hidden_size, lay.heads
        size = n // heads
        block = activation(spec.block_activation)
        out_gate = activation(spec.output_gate_activation)
        log_forget: Callable[[Tensor], Tensor] = (
            F.logsigmoid if spec.forget_activation == "sigmoid" else (lambda f: f)
        )

        def step(xw_t: Tensor, state: State, p: Params) -> State:
            h, c, norm, m = state
            # R h per head: (B, heads, size) with (gate, head, out, in) -> (B, gate, head, out)
            rec = torch.einsum("bhi,ghoi->bgho", h.reshape(-1, heads, size), p["weight_hh_heads"])
            i, f, z, o = (xw_t + rec.reshape(h.shape[0], 4 * n)).split(n, dim=1)
            log_f = log_forget(f)
            m_new = torch.maximum(log_f + m, i)
            i_s = torch.exp(i - m_new)
            f_s = torch.exp(log_f + m - m_new)
            c = torch.addcmul(f_s * c, i_s, block(z))
            norm = torch.addcmul(i_s, f_s, norm)
            return out_gate(o) * c / norm, c, norm, m_new

        self._step = step
        self._shape = (4, heads, size, size)

    def prepare(self, params: Params) -> Params:
        p = dict(params)
        p["weight_hh_heads"] = p["weight_hh"].view(self._shape)
        return p


def build_scan(spec: CellSpec, lay: Layout) -> Scan:
    scan_cls = {"lstm": LSTMScan, "gru": GRUScan, "elman": ElmanScan, "slstm": SLSTMScan}
    return scan_cls[str(spec.kind)](spec, lay)
