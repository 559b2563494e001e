"""A cell's components as search dimensions: spec fields sampled beside the hyperparameters.

In a search space, keys under ``cell.`` are components, categorical, applied over the study's
preset: ``cell.gates.GATE`` (true/false: the gate exists), ``cell.peepholes.GATE`` (``none``,
``prev``, ``new``), ``cell.sources.PART`` (GRU family: sources joined by ``+``, or ``none``)
and the fields in :data:`FIELDS`. Combinations the spec refuses are never trained: the random
sampler redraws a trial's components until the spec accepts them (rejection sampling, so the
cells are uniform over the valid combinations).

A trial reaches its job as one short, readable override, ``components=TOKEN`` (e.g.
``fo+pf+gtanh+hidentity+fb1.0``): one folder name, one fingerprint, and the job rebuilds the
spec from it and its preset (:func:`apply_token`), so it runs without the Optuna storage.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from ablate.cells.presets import preset, preset_names
from ablate.cells.spec import LSTM_GATE_ORDER, CellSpec, SpecError, StateKind
from ablate.errors import AblateError

PREFIX = "cell."
FIELDS = (
    "block_activation",
    "output_activation",
    "coupled",
    "full_gate_recurrence",
    "forget_bias",
    "reset",
)
_NESTED = {"gates": ("input", "forget", "output"), "peepholes": ("input", "forget", "output")}
_PARTS = {"r": "reset", "z": "update", "c": "candidate"}
_IGNORED = ("name", "paper", "description", "fused")  # not what a cell computes


def is_component(key: str) -> bool:
    return key.startswith(PREFIX)


def check_key(key: str) -> None:
    """Refuse a component key that names no component, in one line."""
    parts = key[len(PREFIX) :].split(".")
    if len(parts) == 1 and parts[0] in FIELDS:
        return
    if len(parts) == 2 and parts[0] in _NESTED and parts[1] in _NESTED[parts[0]]:
        return
    if len(parts) == 2 and parts[0] == "sources" and parts[1] in _PARTS.values():
        return
    raise AblateError(
        f"search space: {key}: not a cell component (cell.gates.GATE, cell.peepholes.GATE, "
        f"cell.sources.PART, or cell.FIELD for FIELD in {', '.join(FIELDS)})"
    )


def sampled_spec(base: Mapping[str, Any], values: Mapping[str, Any]) -> CellSpec:
    """The preset ``base`` (a spec dict) with the sampled components; raises SpecError."""
    spec = {k: v for k, v in base.items() if k != "fused"}
    gates = [str(g) for g in CellSpec.from_dict(base).gates]
    peepholes = dict(spec.get("peepholes") or {})
    sources = dict(spec.get("sources") or {})
    for key, value in values.items():
        field, _, sub = key[len(PREFIX) :].partition(".")
        if field == "gates":
            gates = [g for g in gates if g != sub] + ([sub] if value else [])
        elif field == "peepholes":
            peepholes.pop(sub, None)
            if value != "none":
                peepholes[sub] = value
        elif field == "sources":
            sources.pop(sub, None)
            if value != "none":
                sources[sub] = str(value).split("+")
        else:
            spec[field] = value
    if spec.get("kind", "lstm") in ("lstm", "slstm"):
        spec.update(gates=gates, peepholes=peepholes)
    if sources:
        spec["sources"] = sources
    return CellSpec.from_dict(spec)


def valid(base: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    try:
        sampled_spec(base, values)
    except SpecError:
        return False
    return True


def values_of(spec: CellSpec, keys: list[str]) -> dict[str, Any]:
    """The components ``keys`` of ``spec``, as a search would sample them."""
    out: dict[str, Any] = {}
    for key in keys:
        field, _, sub = key[len(PREFIX) :].partition(".")
        if field == "gates":
            out[key] = sub in spec.gates
        elif field == "peepholes":
            seen = {str(g): str(v) for g, v in spec.peepholes.items()}
            out[key] = seen.get(sub, "none")
        elif field == "sources":
            out[key] = "+".join(str(s) for s in spec.sources.get(sub, ())) or "none"
        else:
            value = getattr(spec, field)
            out[key] = str(value) if field == "reset" else value
    return out


def token(spec: CellSpec) -> str:
    """The spec's components as one Hydra-safe word, items joined by ``+``: gate letters (or
    ``none``), ``p`` and the peephole letters (capital: sees c_t), ``g``/``h`` and the block
    and output activations, ``cifg``, ``fgr``, ``fb`` and the forget bias; for the GRU
    family ``r``/``z``/``c`` and each part's sources (joined by ``-``), then the reset
    position."""
    if spec.kind is StateKind.GRU:
        items = [
            code + "-".join(str(s) for s in spec.sources[part])
            for code, part in _PARTS.items()
            if part in spec.sources
        ]
        return "+".join([*items, str(spec.reset)])
    items = ["".join(str(g)[0] for g in spec.gates) or "none"]
    if spec.peepholes:
        items.append(
            "p"
            + "".join(
                str(g)[0].upper() if str(spec.peepholes[g]) == "new" else str(g)[0]
                for g in LSTM_GATE_ORDER
                if g in spec.peepholes
            )
        )
    items += [f"g{spec.block_activation}", f"h{spec.output_activation}"]
    items += ["cifg"] * spec.coupled + ["fgr"] * spec.full_gate_recurrence
    items += [f"fb{spec.forget_bias!r}"] if spec.forget_bias else []
    return "+".join(items)


def apply_token(base: Mapping[str, Any], word: str) -> dict[str, Any]:
    """The spec dict ``base`` with the components ``word`` (see :func:`token`) says."""
    spec = {k: v for k, v in base.items() if k != "fused"}
    items = str(word).split("+")

    def fail() -> AblateError:
        return AblateError(f"components={word}: not a component token of a {spec['name']} cell")

    if spec.get("kind", "lstm") == "gru":
        spec["sources"] = {}
        for item in items:
            if item in ("before", "after"):
                spec["reset"] = item
            elif item[:1] in _PARTS:
                spec["sources"][_PARTS[item[0]]] = item[1:].split("-")
            else:
                raise fail()
        return spec
    letters = {g[0]: g for g in _NESTED["gates"]}
    head = items.pop(0) if items else ""
    if head != "none" and not set(head) <= set(letters):
        raise fail()
    spec.update(
        gates=[letters[c] for c in head if head != "none"],
        peepholes={},
        coupled=False,
        full_gate_recurrence=False,
        forget_bias=0.0,
    )
    for item in items:
        if item in ("cifg", "fgr"):
            spec["coupled" if item == "cifg" else "full_gate_recurrence"] = True
        elif item.startswith("fb"):
            try:
                spec["forget_bias"] = float(item[2:])
            except ValueError:
                raise fail() from None
        elif item[:1] in ("g", "h"):
            spec["block_activation" if item[0] == "g" else "output_activation"] = item[1:]
        elif item[:1] == "p" and set(item[1:].lower()) <= set(letters):
            spec["peepholes"] = {
                letters[c.lower()]: "new" if c.isupper() else "prev" for c in item[1:]
            }
        else:
            raise fail()
    return spec


def _computes(spec: CellSpec) -> dict[str, Any]:
    return {k: v for k, v in spec.to_dict().items() if k not in _IGNORED}


@functools.cache
def _presets() -> list[tuple[str, dict[str, Any]]]:
    return [(name, _computes(preset(name))) for name in preset_names()]


def describe(spec: CellSpec) -> str:
    """A preset's name when the spec computes what that preset does, else its components
    spelled out: ``i f o peep(i,f,o) g=tanh h=tanh`` (a peephole on o sees c_t unless
    written ``o:prev``), then ``cifg``, ``fgr``, ``fb=1``."""
    mine = _computes(spec)
    for name, computes in _presets():
        if computes == mine:
            return name
    if spec.kind is StateKind.GRU:
        parts = [
            f"{code}({','.join(str(s) for s in spec.sources[part])})"
            for code, part in _PARTS.items()
            if part in spec.sources
        ]
        return " ".join([*parts, f"reset={spec.reset}"])
    words = [str(g)[0] for g in spec.gates] or ["no gates"]
    if spec.peepholes:
        seen = [
            str(g)[0] + (":prev" if g.value == "output" and spec.peepholes[g] == "prev" else "")
            for g in LSTM_GATE_ORDER
            if g in spec.peepholes
        ]
        words.append(f"peep({','.join(seen)})")
    words += [f"g={spec.block_activation}", f"h={spec.output_activation}"]
    words += ["cifg"] * spec.coupled + ["fgr"] * spec.full_gate_recurrence
    words += [f"fb={spec.forget_bias:g}"] if spec.forget_bias else []
    return " ".join(words)
