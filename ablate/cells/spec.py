"""The declarative cell spec: one validated dataclass that every named variant is a preset of.

A spec says *what* a cell computes; :mod:`ablate.cells.layout` turns it into parameter shapes
and :mod:`ablate.cells.rnn` into a module. Keeping the spec free of torch lets configs, the CLI
and reports reason about variants without building a model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ablate.errors import AblateError


class SpecError(AblateError):
    """A cell spec that makes no sense; the message names the offending field."""


class StateKind(StrEnum):
    LSTM = "lstm"  # cell state c and output h
    GRU = "gru"  # one state h, gated interpolation between old state and candidate
    ELMAN = "elman"  # h_t = act(W x + R h + b)
    SLSTM = "slstm"  # xLSTM's sLSTM: (h, c, n, m), exponential input gate, normaliser, stabiliser


class Recurrence(StrEnum):
    """How h_{t-1} enters a cell's pre-activations (the GRU family says it through sources)."""

    FULL = "full"  # R h_{t-1}
    DIAGONAL = "diagonal"  # u * h_{t-1}, one weight per unit (IndRNN)
    NONE = "none"  # not at all: the gates and block input see x alone (minLSTM)


class Gate(StrEnum):
    INPUT = "input"
    FORGET = "forget"
    OUTPUT = "output"


class CellValue(StrEnum):
    """Which cell value a peephole sees."""

    PREV = "prev"  # c_{t-1}
    NEW = "new"  # c_t (only possible for the output gate, computed after the cell update)


class Source(StrEnum):
    """What a GRU-family gate or candidate receives."""

    WX = "wx"  # projected input W x
    X = "x"  # the raw input x (a learned projection when input_size != hidden_size)
    TANH_X = "tanh_x"  # tanh of the raw input
    RH = "rh"  # projected previous state R h
    R_TANH_H = "r_tanh_h"  # projected squashed previous state R tanh(h)


class ResetPosition(StrEnum):
    BEFORE = "before"  # R (r * h): the paper GRU and MUT1-3
    AFTER = "after"  # r * (R h + b_hn): torch.nn.GRU


class UpdateSide(StrEnum):
    """Which term the update gate z multiplies."""

    OLD = "old"  # h_t = z * h + (1 - z) * h~   (paper GRU, torch.nn.GRU)
    NEW = "new"  # h_t = z * h~ + (1 - z) * h   (MUT1-3)


ACTIVATIONS = ("tanh", "sigmoid", "identity", "relu", "hardtanh", "softsign")
GATE_ACTIVATIONS = ("sigmoid", "tanh", "hardsigmoid")
FORGET_ACTIVATIONS = ("sigmoid", "exp")  # sLSTM's forget gate
LSTM_GATE_ORDER = (Gate.INPUT, Gate.FORGET, Gate.OUTPUT)
GRU_PARTS = ("reset", "update", "candidate")


@dataclass(frozen=True)
class CellSpec:
    """Everything that distinguishes one recurrent cell from another.

    Fields that do not apply to a ``kind`` must keep their defaults, so a spec never carries
    settings that silently do nothing.
    """

    name: str
    kind: StateKind = StateKind.LSTM
    paper: str = ""
    description: str = ""
    # LSTM family
    gates: tuple[Gate, ...] | None = None  # None: all three for kind 'lstm', none otherwise
    peepholes: Mapping[Gate, CellValue] = field(default_factory=dict)
    block_activation: str = "tanh"  # g, applied to the block input (and the Elman update)
    output_activation: str = "tanh"  # k, applied to the cell before the output gate
    gate_activation: str = "sigmoid"
    output_gate_activation: str = "sigmoid"  # Jozefowicz prints tanh here; sigmoid is standard
    coupled: bool = False  # f = 1 - i (CIFG)
    full_gate_recurrence: bool = False  # FGR: gates see all gates' previous activations
    forget_bias: float = 0.0  # initial forget-gate bias
    normalized: bool = False  # i' = i / (i + f), f' = f / (i + f) (minLSTM)
    recurrence: Recurrence = Recurrence.FULL  # LSTM and Elman kinds
    recurrent_max: float | None = None  # |u| bound of a diagonal recurrence (IndRNN)
    # sLSTM
    heads: int = 1  # R block-diagonal, one block per head
    forget_activation: str = "sigmoid"  # or "exp"
    # GRU family
    sources: Mapping[str, tuple[Source, ...]] = field(default_factory=dict)
    reset: ResetPosition = ResetPosition.BEFORE
    update_side: UpdateSide = UpdateSide.OLD
    # Which torch kernel computes exactly this function, if any ("lstm" or "gru").
    fused: str | None = None

    def __post_init__(self) -> None:
        if self.gates is None:
            default = LSTM_GATE_ORDER if self.kind in (StateKind.LSTM, StateKind.SLSTM) else ()
            object.__setattr__(self, "gates", default)
        # Canonical order, so that specs listing the same gates compare and lay out equal.
        object.__setattr__(self, "gates", tuple(g for g in LSTM_GATE_ORDER if g in self.gates))
        _validate(self)

    @property
    def has_cell_state(self) -> bool:
        return self.kind is StateKind.LSTM

    @property
    def parallel(self) -> bool:
        """Whether no gate or candidate sees h_{t-1}: the recurrence is then linear in the
        state, h_t = a_t * h_{t-1} + b_t, and a parallel scan over time computes it."""
        if self.kind is StateKind.LSTM:
            return self.recurrence is Recurrence.NONE
        if self.kind is StateKind.GRU:
            recurrent = (Source.RH, Source.R_TANH_H)
            return not any(s in recurrent for srcs in self.sources.values() for s in srcs)
        return False

    def gate_peephole(self, gate: Gate) -> CellValue | None:
        return self.peepholes.get(gate)

    @property
    def parametrized_gates(self) -> tuple[Gate, ...]:
        """Gates with weights: a coupled forget gate is computed from the input gate."""
        return tuple(g for g in self.gates if not (self.coupled and g is Gate.FORGET))

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-ready values (enums as strings), the inverse of :meth:`from_dict`."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "gates":
                value = [str(g) for g in value]
            elif f.name == "peepholes":
                value = {str(g): str(v) for g, v in value.items()}
            elif f.name == "sources":
                value = {k: [str(s) for s in v] for k, v in value.items()}
            elif isinstance(value, StrEnum):
                value = str(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CellSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(
                f"cell spec: unknown field {unknown[0]!r} "
                f"(valid fields: {', '.join(sorted(known))})"
            )
        if "name" not in data:
            raise SpecError("cell spec: missing field 'name'")
        kwargs: dict[str, Any] = dict(data)
        kind = _enum(StateKind, kwargs.get("kind", "lstm"), "kind")
        kwargs["kind"] = kind
        if "gates" in kwargs:
            gates = kwargs["gates"]
            if gates is None or isinstance(gates, str):
                raise SpecError("cell spec: field 'gates' must be a list of gate names")
            names = [_enum(Gate, g, "gates") for g in gates]
            if len(set(names)) != len(names):
                raise SpecError("cell spec: field 'gates' lists a gate twice")
            kwargs["gates"] = tuple(names)
        if "peepholes" in kwargs:
            peep = kwargs["peepholes"] or {}
            if not isinstance(peep, Mapping):
                raise SpecError("cell spec: field 'peepholes' must map gate -> 'prev' or 'new'")
            kwargs["peepholes"] = {
                _enum(Gate, g, "peepholes"): _enum(CellValue, v, f"peepholes.{g}")
                for g, v in peep.items()
            }
        if "sources" in kwargs:
            src = kwargs["sources"] or {}
            if not isinstance(src, Mapping):
                raise SpecError(
                    "cell spec: field 'sources' must map reset/update/candidate -> list"
                )
            kwargs["sources"] = {
                str(part): tuple(_enum(Source, s, f"sources.{part}") for s in srcs)
                for part, srcs in src.items()
            }
        if "reset" in kwargs:
            kwargs["reset"] = _enum(ResetPosition, kwargs["reset"], "reset")
        if "update_side" in kwargs:
            kwargs["update_side"] = _enum(UpdateSide, kwargs["update_side"], "update_side")
        if "recurrence" in kwargs:
            kwargs["recurrence"] = _enum(Recurrence, kwargs["recurrence"], "recurrence")
        for flag in ("coupled", "full_gate_recurrence", "normalized"):
            if flag in kwargs and not isinstance(kwargs[flag], bool):
                raise SpecError(f"cell spec: field {flag!r} must be true or false")
        if "forget_bias" in kwargs:
            try:
                kwargs["forget_bias"] = float(kwargs["forget_bias"])
            except (TypeError, ValueError):
                raise SpecError("cell spec: field 'forget_bias' must be a number") from None
        if kwargs.get("recurrent_max") is not None:
            bound = kwargs["recurrent_max"]
            if isinstance(bound, bool) or not isinstance(bound, int | float) or bound <= 0:
                raise SpecError(
                    "cell spec: field 'recurrent_max' must be a positive number or null"
                )
            kwargs["recurrent_max"] = float(bound)
        if "heads" in kwargs:
            heads = kwargs["heads"]
            if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1:
                raise SpecError("cell spec: field 'heads' must be a positive integer")
        return cls(**kwargs)


def _enum(enum_cls: type[StrEnum], value: Any, field_name: str) -> Any:
    try:
        return enum_cls(str(value))
    except ValueError:
        valid = ", ".join(e.value for e in enum_cls)
        raise SpecError(
            f"cell spec: field {field_name!r} has unknown value {value!r} (valid: {valid})"
        ) from None


def _validate(spec: CellSpec) -> None:
    def fail(field_name: str, why: str) -> None:
        raise SpecError(f"cell spec {spec.name!r}: field {field_name!r}: {why}")

    if not spec.name or not isinstance(spec.name, str):
        fail("name", "must be a non-empty string")
    for name, valid in (
        ("block_activation", ACTIVATIONS),
        ("output_activation", ACTIVATIONS),
        ("gate_activation", GATE_ACTIVATIONS),
        ("output_gate_activation", GATE_ACTIVATIONS),
    ):
        if getattr(spec, name) not in valid:
            fail(name, f"unknown activation {getattr(spec, name)!r} (valid: {', '.join(valid)})")
    if spec.fused not in (None, "lstm", "gru"):
        fail("fused", f"unknown kernel {spec.fused!r} (valid: lstm, gru, or null)")

    if spec.forget_activation not in FORGET_ACTIVATIONS:
        fail(
            "forget_activation",
            f"unknown activation {spec.forget_activation!r} "
            f"(valid: {', '.join(FORGET_ACTIVATIONS)})",
        )
    _validate_recurrence(spec, fail)
    if spec.kind is not StateKind.SLSTM:
        if spec.heads != 1:
            fail("heads", f"block-diagonal heads belong to kind 'slstm', not {spec.kind!s}")
        if spec.forget_activation != "sigmoid":
            fail("forget_activation", f"belongs to kind 'slstm', not {spec.kind!s}")
    if spec.normalized and spec.kind is not StateKind.LSTM:
        fail("normalized", f"normalises LSTM input and forget gates; kind {spec.kind!s} has none")
    if spec.kind is StateKind.LSTM:
        _validate_lstm(spec, fail)
    elif spec.kind is StateKind.SLSTM:
        _validate_slstm(spec, fail)
    else:
        if spec.gates:
            fail("gates", f"input/forget/output gates belong to kind 'lstm', not {spec.kind!s}")
        if spec.peepholes:
            fail("peepholes", f"a peephole needs a cell state; kind {spec.kind!s} has none")
        if spec.coupled:
            fail("coupled", f"coupling f = 1 - i needs LSTM gates; kind {spec.kind!s} has none")
        if spec.full_gate_recurrence:
            fail("full_gate_recurrence", f"needs LSTM gates; kind {spec.kind!s} has none")
        if spec.forget_bias != 0.0:
            fail("forget_bias", f"kind {spec.kind!s} has no forget gate")
        if spec.output_activation != "tanh" or spec.output_gate_activation != "sigmoid":
            fail("output_activation", f"kind {spec.kind!s} has no output activation")
    if spec.kind is StateKind.GRU:
        _validate_gru(spec, fail)
    elif (
        spec.sources
        or spec.reset is not ResetPosition.BEFORE
        or (spec.update_side is not UpdateSide.OLD)
    ):
        fail("sources", f"sources/reset/update_side belong to kind 'gru', not {spec.kind!s}")
    if spec.kind in (StateKind.ELMAN, StateKind.SLSTM) and spec.fused is not None:
        fail("fused", f"no fused kernel is used for kind {spec.kind!s}")


def _validate_recurrence(spec: CellSpec, fail: Any) -> None:
    if spec.recurrence is Recurrence.DIAGONAL and spec.kind is not StateKind.ELMAN:
        fail("recurrence", "'diagonal' (u * h_{t-1}, IndRNN) is for kind 'elman'")
    if spec.recurrence is Recurrence.NONE:
        if spec.kind is not StateKind.LSTM:
            fail(
                "recurrence",
                "'none' (gates from x alone) is for kind 'lstm'; the GRU family drops h "
                "through its sources",
            )
        if spec.peepholes:
            fail("peepholes", "recurrence 'none': the gates see x alone, not the cell")
        if spec.full_gate_recurrence:
            fail("full_gate_recurrence", "recurrence 'none': the gates see x alone")
    if spec.recurrent_max is not None:
        if spec.recurrence is not Recurrence.DIAGONAL:
            fail("recurrent_max", "bounds the diagonal recurrence u; needs recurrence 'diagonal'")
        if spec.recurrent_max <= 0:
            fail("recurrent_max", "must be positive")


def _validate_slstm(spec: CellSpec, fail: Any) -> None:
    if spec.gates != LSTM_GATE_ORDER:
        fail("gates", "the sLSTM has all three gates (input, forget, output)")
    if spec.peepholes:
        fail("peepholes", "the sLSTM has no peepholes")
    if spec.coupled or spec.full_gate_recurrence:
        fail("coupled" if spec.coupled else "full_gate_recurrence", "not defined for the sLSTM")
    if spec.gate_activation != "sigmoid":
        fail("gate_activation", "the sLSTM's input gate is exp; see forget_activation")
    if spec.output_activation != "tanh":
        fail("output_activation", "the sLSTM outputs o * c / n, with no output activation")


def _validate_lstm(spec: CellSpec, fail: Any) -> None:
    for gate, seen in spec.peepholes.items():
        if gate not in spec.gates:
            fail(f"peepholes.{gate}", f"peephole on the {gate} gate, which the cell does not have")
        if seen is CellValue.NEW and gate is not Gate.OUTPUT:
            fail(
                f"peepholes.{gate}",
                "only the output gate can see the new cell c_t (the others compute it)",
            )
        if spec.coupled and gate is Gate.FORGET:
            fail("peepholes.forget", "a coupled forget gate (f = 1 - i) has no parameters")
    if spec.coupled:
        if Gate.INPUT not in spec.gates:
            fail("coupled", "coupling f = 1 - i needs an input gate")
        if Gate.FORGET not in spec.gates:
            fail("coupled", "coupling computes the forget gate as 1 - i; list 'forget' in gates")
        if spec.forget_bias != 0.0:
            fail("forget_bias", "a coupled forget gate (f = 1 - i) has no bias")
    if spec.forget_bias != 0.0 and Gate.FORGET not in spec.gates:
        fail("forget_bias", "the cell has no forget gate")
    if spec.full_gate_recurrence and not spec.parametrized_gates:
        fail("full_gate_recurrence", "the cell has no gates to connect")
    if spec.normalized:
        if Gate.INPUT not in spec.gates or Gate.FORGET not in spec.gates:
            fail("normalized", "normalising i and f needs both an input and a forget gate")
        if spec.coupled:
            fail("normalized", "a coupled pair (f = 1 - i) already sums to one")
        if spec.full_gate_recurrence:
            fail("normalized", "not defined with full gate recurrence")
    if Gate.OUTPUT not in spec.gates and spec.output_gate_activation != "sigmoid":
        fail("output_gate_activation", "the cell has no output gate")
    if spec.fused == "lstm":
        standard = (
            spec.gates == LSTM_GATE_ORDER
            and not spec.peepholes
            and not spec.coupled
            and not spec.full_gate_recurrence
            and spec.block_activation == "tanh"
            and spec.output_activation == "tanh"
            and spec.gate_activation == "sigmoid"
            and spec.output_gate_activation == "sigmoid"
            and spec.recurrence is Recurrence.FULL
            and not spec.normalized
        )
        if not standard:
            fail("fused", "torch's LSTM kernel computes only the standard LSTM without peepholes")
    elif spec.fused == "gru":
        fail("fused", "torch's GRU kernel needs kind 'gru'")


def _validate_gru(spec: CellSpec, fail: Any) -> None:
    unknown = sorted(set(spec.sources) - set(GRU_PARTS))
    if unknown:
        fail(f"sources.{unknown[0]}", f"unknown part (valid: {', '.join(GRU_PARTS)})")
    # The reset gate acts on the candidate's R h alone: it exists exactly when that does.
    candidate = spec.sources.get("candidate", ())
    for part in ("update", "candidate", "reset"):
        srcs = spec.sources.get(part, ())
        if not srcs and (part != "reset" or Source.RH in candidate):
            fail(f"sources.{part}", "needs at least one source")
        if len(set(srcs)) != len(srcs):
            fail(f"sources.{part}", "lists a source twice")
        if Source.RH in srcs and Source.R_TANH_H in srcs:
            fail(f"sources.{part}", "use either 'rh' or 'r_tanh_h', not both")
    if Source.R_TANH_H in candidate:
        fail("sources.candidate", "the reset gate acts on R h; 'r_tanh_h' is for the gates")
    if Source.RH not in candidate and spec.reset is ResetPosition.AFTER:
        fail("reset", "reset 'after' multiplies the candidate's R h, which sources omit")
    if Source.RH not in candidate and spec.sources.get("reset"):
        fail("sources.reset", "the reset gate acts on the candidate's R h, which sources omit")
    if spec.block_activation != "tanh" and spec.fused == "gru":
        fail("fused", "torch's GRU kernel uses tanh for the candidate")
    if spec.fused == "gru":
        standard = (
            spec.reset is ResetPosition.AFTER
            and spec.update_side is UpdateSide.OLD
            and spec.gate_activation == "sigmoid"
            and all(set(spec.sources.get(p, ())) == {Source.WX, Source.RH} for p in GRU_PARTS)
        )
        if not standard:
            fail("fused", "torch's GRU kernel computes only torch.nn.GRU's form")
    elif spec.fused == "lstm":
        fail("fused", "torch's LSTM kernel needs kind 'lstm'")
