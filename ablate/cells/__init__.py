"""The configurable gated cell: one spec, every Greff and Jozefowicz variant and the recurrent
cells of 2024 (minGRU, minLSTM, sLSTM) and IndRNN a preset of it."""

from ablate.cells.layout import Layout, layout
from ablate.cells.presets import load_spec, preset, preset_names
from ablate.cells.rnn import Backend, GatedRNN
from ablate.cells.spec import CellSpec, SpecError, StateKind

__all__ = [
    "Backend",
    "CellSpec",
    "GatedRNN",
    "Layout",
    "SpecError",
    "StateKind",
    "layout",
    "load_spec",
    "preset",
    "preset_names",
]
