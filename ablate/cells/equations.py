"""The equations a spec computes, rendered from the spec itself (so user YAMLs show their own)."""

from __future__ import annotations

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

_GATE_LETTER = {Gate.INPUT: "i", Gate.FORGET: "f", Gate.OUTPUT: "o"}
_GATE_NAME = {Gate.INPUT: "input gate", Gate.FORGET: "forget gate", Gate.OUTPUT: "output gate"}


def _apply(act: str, arg: str) -> str:
    return arg if act == "identity" else f"{act}({arg})"


def equations(spec: CellSpec) -> list[str]:
    """One line per equation, with the parameters it uses, e.g. ``c_t = z_t * i_t + ...``."""
    if spec.kind is StateKind.LSTM:
        lines = _lstm(spec)
    elif spec.kind is StateKind.GRU:
        lines = _gru(spec)
    elif spec.kind is StateKind.SLSTM:
        lines = _slstm(spec)
    else:
        lines = _elman(spec)
    if spec.parallel:
        lines.append("no h_{t-1} in the gates or candidate: trained by a parallel scan over time")
    return lines


def _elman(spec: CellSpec) -> list[str]:
    if spec.recurrence is Recurrence.FULL:
        return [f"h_t = {_apply(spec.block_activation, 'W x_t + R h_{t-1} + b')}"]
    lines = [
        f"h_t = {_apply(spec.block_activation, 'W x_t + u * h_{t-1} + b')}"
        "    (u: one recurrent weight per unit)"
    ]
    if spec.recurrent_max is not None:
        lines.append(
            f"|u| <= {spec.recurrent_max:g}: u is clipped to it before every forward pass"
        )
    return lines


def _slstm(spec: CellSpec) -> list[str]:
    def pre(k: str) -> str:
        return f"W_{k} x_t + R_{k} h_{{t-1}} + b_{k}"

    log_f = "log sigmoid(f~_t)" if spec.forget_activation == "sigmoid" else "f~_t"
    o = spec.output_gate_activation
    return [
        f"z_t = {_apply(spec.block_activation, pre('z'))}    (block input)",
        f"i~_t = {pre('i')};  log i_t = i~_t    (exponential input gate)",
        f"f~_t = {pre('f')};  log f_t = {log_f}    (forget gate)",
        f"o_t = {o}({pre('o')})    (output gate)",
        "m_t = max(log f_t + m_{t-1}, log i_t)    (stabiliser)",
        "i'_t = exp(log i_t - m_t);  f'_t = exp(log f_t + m_{t-1} - m_t)",
        "c_t = f'_t * c_{t-1} + i'_t * z_t;  n_t = f'_t * n_{t-1} + i'_t    (cell, normaliser)",
        "h_t = o_t * c_t / n_t",
        f"R_z, R_i, R_f, R_o block-diagonal: {spec.heads} head(s) of N / {spec.heads} units",
    ]


def _lstm(spec: CellSpec) -> list[str]:
    gates = spec.parametrized_gates
    fed_back = ", ".join(f"{_GATE_LETTER[g]}_{{t-1}}" for g in gates)
    recurrent = spec.recurrence is Recurrence.FULL
    block_terms = "W_z x_t + R_z h_{t-1} + b_z" if recurrent else "W_z x_t + b_z"
    lines = [f"z_t = {_apply(spec.block_activation, block_terms)}    (block input)"]

    def gate_line(g: Gate) -> str:
        k = _GATE_LETTER[g]
        terms = [f"W_{k} x_t"] + ([f"R_{k} h_{{t-1}}"] if recurrent else [])
        seen = spec.gate_peephole(g)
        if seen is not None:
            terms.append(f"p_{k} * c_{{t-1}}" if seen is CellValue.PREV else f"p_{k} * c_t")
        if spec.full_gate_recurrence:
            terms.append(f"G_{k} [{fed_back}]")
        terms.append(f"b_{k}")
        act = spec.output_gate_activation if g is Gate.OUTPUT else spec.gate_activation
        return f"{k}_t = {act}({' + '.join(terms)})    ({_GATE_NAME[g]})"

    if Gate.INPUT in spec.gates:
        lines.append(gate_line(Gate.INPUT))
    if spec.coupled:
        lines.append("f_t = 1 - i_t    (forget gate, coupled)")
    elif Gate.FORGET in spec.gates:
        lines.append(gate_line(Gate.FORGET))
    mark = ""
    if spec.normalized:
        mark = "'"
        lines.append("i'_t = i_t / (i_t + f_t);  f'_t = f_t / (i_t + f_t)    (normalised)")
    new_part = f"z_t * i{mark}_t" if Gate.INPUT in spec.gates else "z_t"
    old_part = f"c_{{t-1}} * f{mark}_t" if Gate.FORGET in spec.gates else "c_{t-1}"
    lines.append(f"c_t = {new_part} + {old_part}")
    if Gate.OUTPUT in spec.gates:
        lines.append(gate_line(Gate.OUTPUT))
        lines.append(f"h_t = {_apply(spec.output_activation, 'c_t')} * o_t")
    else:
        lines.append(f"h_t = {_apply(spec.output_activation, 'c_t')}")
    if spec.full_gate_recurrence:
        lines.append(f"[{fed_back}] at t = 0: zero, or the state's a (the last call's)")
    return lines


def _gru(spec: CellSpec) -> list[str]:
    letter = {"reset": "r", "update": "z", "candidate": "h"}

    def term(part: str, src: Source) -> str:
        k = letter[part]
        return {
            Source.WX: f"W_{k} x_t",
            Source.X: "x_t",
            Source.TANH_X: "tanh(x_t)",
            Source.RH: f"R_{k} h_{{t-1}}",
            Source.R_TANH_H: f"R_{k} tanh(h_{{t-1}})",
        }[src]

    lines = []
    for part in ("reset", "update"):
        if not spec.sources.get(part):
            continue
        k = letter[part]
        terms = [term(part, s) for s in spec.sources[part]] + [f"b_{k}"]
        lines.append(f"{k}_t = {spec.gate_activation}({' + '.join(terms)})    ({part} gate)")
    terms = []
    for src in spec.sources["candidate"]:
        if src is Source.RH and spec.reset is ResetPosition.BEFORE:
            terms.append("R_h (r_t * h_{t-1})")
        elif src is Source.RH:
            terms.append("r_t * (R_h h_{t-1} + b_hn)")
        else:
            terms.append(term("candidate", src))
    terms.append("b_h")
    lines.append(f"h~_t = {_apply(spec.block_activation, ' + '.join(terms))}    (candidate)")
    if spec.update_side is UpdateSide.OLD:
        lines.append("h_t = z_t * h_{t-1} + (1 - z_t) * h~_t")
    else:
        lines.append("h_t = z_t * h~_t + (1 - z_t) * h_{t-1}")
    if any(s in (Source.X, Source.TANH_X) for p in spec.sources.values() for s in p):
        lines.append("x_t stands for P x_t (learned, no bias) when input_size != hidden_size")
    return lines
