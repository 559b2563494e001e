"""GatedRNN: a multi-layer, optionally bidirectional RNN of any cell spec, called like nn.LSTM."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ablate.cells import compiled
from ablate.cells.init import InitScheme, initialise
from ablate.cells.kernels import KernelScan, supports
from ablate.cells.layout import Layout, layout
from ablate.cells.parallel import ParallelScan
from ablate.cells.presets import preset
from ablate.cells.scan import Padding, Params, Scan, State, build_scan
from ablate.cells.spec import CellSpec, Gate, SpecError, StateKind
from ablate.errors import choice

RNNState = Tensor | tuple[Tensor, ...]


class Backend(StrEnum):
    # torch's fused kernel where the spec is exactly one (on the CPU only for batches without
    # lengths: it packs the others, slowly); else the parallel scan where the gates see x
    # alone; else, on the CPU, the C++ kernels (built once per machine) where they compute the
    # spec; else, or where they cannot be built (one warning), the reference loop: the
    # fastest pure-Python path measured (see README, "Speed").
    AUTO = "auto"
    FUSED = "fused"  # insist on torch's kernel (an error for specs it cannot compute)
    COMPILED = "compiled"  # insist on the C++ kernels (CPU; an error where they cannot build)
    # The parallel scan over time, for cells whose gates and candidate see x alone (minGRU,
    # minLSTM): what ``auto`` runs for them on every device.
    SCAN = "scan"
    REFERENCE = "reference"  # the plain autograd loop, for debugging and as the oracle


class _LayerParams(nn.Module):
    """The parameters of one layer-direction, named as in :meth:`Layout.shapes`."""

    def __init__(self, lay: Layout) -> None:
        super().__init__()
        for name, shape in lay.shapes().items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape)))

    def as_dict(self) -> dict[str, Tensor]:
        return dict(self.named_parameters(recurse=False))


class GatedRNN(nn.Module):
    r"""Applies a multi-layer RNN of the configurable gated cell described by ``spec``.

    For the LSTM family (``kind: lstm``) each layer computes, for each time step t::

        z_t = g(W_z x_t + R_z h_{t-1} + b_z)                          block input
        i_t = s(W_i x_t + R_i h_{t-1} + p_i * c_{t-1} + b_i)          input gate
        f_t = s(W_f x_t + R_f h_{t-1} + p_f * c_{t-1} + b_f)          forget gate
        c_t = z_t * i_t + c_{t-1} * f_t
        o_t = s(W_o x_t + R_o h_{t-1} + p_o * c_t + b_o)              output gate
        h_t = k(c_t) * o_t

    where a gate the spec omits is 1, a coupled forget gate is ``1 - i_t``, peepholes ``p``
    exist only where the spec lists them, and full gate recurrence adds ``G (i, f, o)_{t-1}``
    to every gate. For the GRU family (``kind: gru``)::

        r_t = s(sources_r),   u_t = s(sources_u)
        h~_t = g(sources_h with R_h (r_t * h_{t-1})  or  r_t * (R_h h_{t-1} + b_hn))
        h_t = u_t * h_{t-1} + (1 - u_t) * h~_t     (or u_t gating h~_t)

    for ``kind: elman``, ``h_t = g(W x_t + R h_{t-1} + b)`` (IndRNN: ``u * h_{t-1}``), and
    for ``kind: slstm`` xLSTM's sLSTM. ``ablate cells show NAME`` prints the exact equations
    of a preset.

    Args:
        spec: a :class:`CellSpec`, a preset name or a path to a YAML spec.
        input_size: features of the input x.
        hidden_size: features of h (and c).
        num_layers: stacked layers; layer l > 0 reads layer l-1's output.
        bidirectional: run a reverse direction too and concatenate both outputs.
        dropout: dropout on each layer's output except the last, in training mode.
        batch_first: inputs and outputs are (B, T, F) instead of (T, B, F).
        init: ``uniform`` (+-init_scale/sqrt(N), zero biases), ``torch`` (torch's default as
            the cell sees it: each bias the sum of torch's b_ih and b_hh), or
            ``xavier_orthogonal`` (per gate block).
        init_scale: the ``uniform`` bound factor or the Xavier/orthogonal gain.
        forget_bias: added to the forget-gate bias at init; None takes the spec's value.
        backend: ``auto``, ``fused``, ``compiled``, ``scan`` or ``reference`` (see
            :class:`Backend`); every one computes the same function.

    Call: ``output, state = rnn(x, state=None, lengths=None)``. ``state`` is ``(h, c)`` for the
    LSTM family, ``(h, c, n, m)`` for the sLSTM and ``h`` otherwise, each
    ``(num_layers * num_directions, B, N)``; with full
    gate recurrence (FGR) it is ``(h, c, a)``, ``a`` of shape
    ``(num_layers * num_directions, B, G * N)``: the last step's activations of the G gates
    fed back (FGR: i, f, o side by side), which the next step's gates see. The state is all
    the recurrence carries, so a sequence cut into windows, each call given the state the
    previous returned (truncated BPTT), computes what one call does; None starts from zeros.
    With ``lengths``, padded steps change nothing: outputs there are zero, each sequence's
    final state is that of its last real step, and the reverse direction starts at its true
    end.
    """

    def __init__(
        self,
        spec: CellSpec | str | Path,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        batch_first: bool = False,
        init: str = "uniform",
        init_scale: float = 1.0,
        forget_bias: float | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.spec = spec if isinstance(spec, CellSpec) else preset(spec)
        for name, value in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"GatedRNN: {name} must be a positive integer, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"GatedRNN: dropout must be in [0, 1), got {dropout!r}")
        if init_scale <= 0:
            raise ValueError(f"GatedRNN: init_scale must be positive, got {init_scale!r}")
        scheme = choice(InitScheme, init, "GatedRNN: unknown init")
        self.backend = choice(Backend, backend, "GatedRNN: unknown backend")
        if (
            forget_bias is not None
            and forget_bias != self.spec.forget_bias
            and Gate.FORGET not in self.spec.parametrized_gates
        ):
            raise SpecError(
                f"GatedRNN: forget_bias={forget_bias} but cell {self.spec.name!r} has no "
                "forget gate with a bias"
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.dropout = float(dropout)
        self.batch_first = batch_first
        self.forget_bias = self.spec.forget_bias if forget_bias is None else float(forget_bias)
        # 0: one model. K: the parameters hold K trials' (a leading K dimension) and a call's
        # batch their rows, trial k's the k-th B; set by ablate.stack, run by the C++ kernels.
        self.trials = 0
        if self.backend is Backend.FUSED and self.spec.fused is None:
            raise SpecError(f"GatedRNN: cell {self.spec.name!r} has no fused torch kernel")
        if self.backend is Backend.COMPILED and not supports(self.spec):
            raise SpecError(
                f"GatedRNN: cell {self.spec.name!r} has no C++ kernel (backend auto runs it "
                f"{'by the parallel scan' if self.spec.parallel else 'in the reference loop'})"
            )
        if self.backend is Backend.SCAN and not self.spec.parallel:
            raise SpecError(
                f"GatedRNN: cell {self.spec.name!r} has no parallel scan: its gates or "
                "candidate see h_{t-1}"
            )
        uses_fused = self.backend in (Backend.AUTO, Backend.FUSED)
        self.fused = self.spec.fused if uses_fused else None

        self.layouts: list[Layout] = []
        self.layers = nn.ModuleList()
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            lay = layout(self.spec, layer_input, hidden_size)
            for _ in range(self.num_directions):
                self.layouts.append(lay)
                self.layers.append(_LayerParams(lay))
        # Features of each state tensor: h, c (LSTM family), FGR's fed-back gate activations;
        # the sLSTM's h, c, n, m.
        first = self.layouts[0]
        self.state_sizes: tuple[int, ...] = (
            (hidden_size,) * 4
            if self.spec.kind is StateKind.SLSTM
            else (hidden_size,)
            + ((hidden_size,) if self.has_cell_state else ())
            + ((len(first.gg_rows) * hidden_size,) if first.gg_rows else ())
        )
        self._scans: list[Scan] = [build_scan(self.spec, lay) for lay in self.layouts]
        self._kernels = [
            KernelScan(self.spec, lay, scan)
            for lay, scan in zip(self.layouts, self._scans, strict=True)
        ] if supports(self.spec) else []
        self._parallel = [
            ParallelScan(self.spec, lay, scan)
            for lay, scan in zip(self.layouts, self._scans, strict=True)
        ] if self.spec.parallel else []
        if self.fused == "lstm":
            self.register_buffer("_zero_bias", torch.zeros(4 * hidden_size), persistent=False)
        elif self.fused == "gru":
            self.register_buffer("_zero_bias", torch.zeros(2 * hidden_size), persistent=False)
        for lay, params in zip(self.layouts, self.layers, strict=True):
            initialise(dict(params.named_parameters()), lay, scheme, init_scale, self.forget_bias)
        self._clip_recurrent()

    def extra_repr(self) -> str:
        return (
            f"{self.spec.name}, {self.input_size}, {self.hidden_size}, "
            f"num_layers={self.num_layers}, bidirectional={self.bidirectional}, "
            f"dropout={self.dropout}, batch_first={self.batch_first}, "
            f"backend={self.backend}"
        )

    @property
    def has_cell_state(self) -> bool:
        return self.spec.kind is StateKind.LSTM

    def path(
        self,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        lengths: bool = False,
    ) -> Backend:
        """The backend a call on ``device`` with ``dtype`` (and ``lengths`` or not) runs:
        ``auto`` resolved, building the C++ kernels on first use (once per machine; a warning
        and the reference loop where they fail). The C++ kernels take float32 and float64 CPU
        tensors, outside autocast. With lengths on the CPU, ``auto`` runs them rather than
        torch's fused kernel, which packs the batch (3-16x slower here: README, "Speed")."""
        device = torch.device(device)
        why_not = None
        if device.type != "cpu":
            why_not = f"run on the CPU, not {device}"
        elif dtype not in (torch.float32, torch.float64):
            why_not = f"take float32 or float64, not {dtype}"
        elif torch.is_autocast_enabled("cpu"):
            why_not = "do not run under autocast"
        if self.backend is Backend.AUTO:
            if self.fused is not None and not (lengths and why_not is None and self._kernels):
                return Backend.FUSED
            if self.spec.parallel:
                return Backend.SCAN
            if not self._kernels:
                return Backend.REFERENCE
            usable = why_not is None and compiled.kernels() is not None
            if self.fused is not None and not usable:
                return Backend.FUSED
            return Backend.COMPILED if usable else Backend.REFERENCE
        if self.backend is Backend.COMPILED:
            if why_not is not None:
                raise ValueError(f"GatedRNN: the compiled kernels {why_not}")
            if compiled.kernels() is None:
                raise RuntimeError("GatedRNN: the C++ kernels could not be built (see the warning)")
        return self.backend

    def forward(
        self, x: Tensor, state: RNNState | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, RNNState]:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"GatedRNN: expected input of shape (B, T, {self.input_size}) "
                f"or (T, B, {self.input_size}), got {tuple(x.shape)}"
            )
        if self.batch_first:
            x = x.transpose(0, 1)
        steps, batch, _ = x.shape
        self._clip_recurrent()
        states = self._initial_state(state, batch, x)
        if lengths is not None:
            lengths = _check_lengths(lengths, batch, steps)
        path = (
            self.path(x.device, x.dtype, lengths is not None)
            if not self.trials
            else Backend.COMPILED
        )
        if path is Backend.FUSED:
            out, final = self._forward_fused(x, states, lengths)
        else:
            out, final = self._forward_loops(x, states, lengths, path)
        if self.batch_first:
            out = out.transpose(0, 1)
        return out, final

    def _clip_recurrent(self) -> None:
        """IndRNN's |u| <= recurrent_max. Li et al. clip u after every optimiser step; clipping
        before every forward is the same (nothing reads u in between) and keeps the constraint
        inside the cell, whatever loop trains it. A clamp in the forward instead would leave an
        entry beyond the bound with no gradient, stuck there for good."""
        bound = self.spec.recurrent_max
        if bound is None:
            return
        with torch.no_grad():
            for params in self.layers:
                u = params.weight_hh
                # Written only when out of bounds, so a graph that saved u stays valid.
                if bool((u.abs() > bound).any()):
                    u.clamp_(-bound, bound)

    def _initial_state(self, state: RNNState | None, batch: int, x: Tensor) -> tuple[Tensor, ...]:
        stack = self.num_layers * self.num_directions
        shapes = [(stack, batch, size) for size in self.state_sizes]
        if state is None:
            return tuple(x.new_zeros(shape) for shape in shapes)
        states = tuple(state) if isinstance(state, tuple | list) else (state,)
        if len(states) != len(shapes) or any(
            not isinstance(s, Tensor) or tuple(s.shape) != shape
            for s, shape in zip(states, shapes, strict=False)
        ):
            names = ("h", "h, c", "h, c, a", "h, c, n, m")[len(shapes) - 1]
            got = [tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__ for s in states]
            raise ValueError(
                f"GatedRNN: expected state ({names}) of shapes {shapes}, got {got}"
            )
        return states

    def _forward_loops(
        self, x: Tensor, states: tuple[Tensor, ...], lengths: Tensor | None, path: Backend
    ) -> tuple[Tensor, RNNState]:
        """Layer by layer, direction by direction, each one time loop of ``path``."""
        padding = None if lengths is None else Padding.of(lengths, x.shape[0], x.device)
        reverse_index = None if padding is None else padding.reverse_index
        finals: list[list[Tensor]] = [[] for _ in states]
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                inp = x if direction == 0 else _reverse(x, reverse_index)
                out, final = self._run(path, k, inp, tuple(s[k] for s in states), padding)
                outputs.append(out if direction == 0 else _reverse(out, reverse_index))
                for store, s in zip(finals, final, strict=True):
                    store.append(s)
            x = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)
            if layer < self.num_layers - 1 and self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
        stacked = tuple(torch.stack(f) for f in finals)
        return x, (stacked if len(stacked) > 1 else stacked[0])

    def _run(
        self, path: Backend, k: int, x: Tensor, state: State, padding: Padding | None
    ) -> tuple[Tensor, State]:
        params: Params = self.layers[k].as_dict()
        if path is Backend.COMPILED:
            return self._kernels[k].run(x, state, params, padding, self.trials)
        if path is Backend.SCAN:
            return self._parallel[k].run(x, state, params, padding)
        return self._scans[k].run(x, state, params, padding)

    def _forward_fused(
        self, x: Tensor, states: tuple[Tensor, ...], lengths: Tensor | None
    ) -> tuple[Tensor, RNNState]:
        weights: list[Tensor] = []
        for params in self.layers:
            p = params.as_dict()
            if self.fused == "lstm":
                weights += [p["weight_ih"], p["weight_hh"], p["bias"], self._zero_bias]
            else:
                b_hh = torch.cat([self._zero_bias, p["bias_hn"]])
                weights += [p["weight_ih"], p["weight_hh"], p["bias"], b_hh]
        kernel = torch.lstm if self.fused == "lstm" else torch.gru
        hx: list[Tensor] | Tensor = list(states) if self.fused == "lstm" else states[0]
        args = (weights, True, self.num_layers, self.dropout, self.training, self.bidirectional)
        if lengths is None:
            result = kernel(x, hx, *args, False)
            out, final = result[0], tuple(result[1:])
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
            order = packed.sorted_indices
            assert order is not None
            hx = [h.index_select(1, order) for h in hx] if self.fused == "lstm" else (
                hx.index_select(1, order)  # type: ignore[union-attr]
            )
            result = kernel(packed.data, packed.batch_sizes, hx, *args)
            out, _ = pad_packed_sequence(
                PackedSequence(result[0], packed.batch_sizes, order, packed.unsorted_indices),
                total_length=x.shape[0],
            )
            final = tuple(h.index_select(1, packed.unsorted_indices) for h in result[1:])
        return out, (final if self.has_cell_state else final[0])  # type: ignore[return-value]


def _reverse(x: Tensor, index: Tensor | None) -> Tensor:
    if index is None:
        return x.flip(0)
    return x.gather(0, index.unsqueeze(-1).expand_as(x))


def _check_lengths(lengths: Tensor, batch: int, steps: int) -> Tensor:
    lengths = torch.as_tensor(lengths, dtype=torch.long)
    if lengths.shape != (batch,):
        raise ValueError(
            f"GatedRNN: lengths must have shape ({batch},), got {tuple(lengths.shape)}"
        )
    if int(lengths.min()) < 1 or int(lengths.max()) > steps:
        raise ValueError(f"GatedRNN: lengths must lie in [1, {steps}], got {lengths.tolist()}")
    return lengths
