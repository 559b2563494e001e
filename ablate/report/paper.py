"""The papers' own numbers and names (from shared/reference/studies.md), and which of our tasks
and cells they match."""

from __future__ import annotations

# Greff et al. 2017: the variants in the paper's order, and the domain each of our tasks
# stands in for (speech: TIMIT; handwriting: IAM Online; music: JSB Chorales).
GREFF_CELLS = ("vanilla", "nig", "nfg", "nog", "niaf", "noaf", "np", "cifg", "fgr")
GREFF_DOMAIN = {
    "vowels": "speech",
    "framewise": "speech",
    "digits": "handwriting",
    "jsb": "music",
}

# Jozefowicz et al. 2015, Table 1: best next-step accuracy found by the search (higher is
# better; PTB is next-WORD accuracy).
JOZEFOWICZ_CELLS = (
    "tanh", "lstm", "lstm_f", "lstm_i", "lstm_o", "lstm_b", "gru", "mut1", "mut2", "mut3",
)  # fmt: skip
JOZEFOWICZ_LABEL = {
    "tanh": "Tanh",
    "lstm": "LSTM",
    "lstm_f": "LSTM-f",
    "lstm_i": "LSTM-i",
    "lstm_o": "LSTM-o",
    "lstm_b": "LSTM-b",
    "gru": "GRU",
    "mut1": "MUT1",
    "mut2": "MUT2",
    "mut3": "MUT3",
}
# The cells of 2024 (Feng et al. 2024; Li et al. 2018; Beck et al. 2024), for tables beside
# Jozefowicz's: the paper has no numbers for them.
MODERN_LABEL = {"mingru": "minGRU", "minlstm": "minLSTM", "indrnn": "IndRNN", "slstm": "sLSTM"}
CELL_LABEL = {**JOZEFOWICZ_LABEL, **MODERN_LABEL}
_TABLE1 = {
    # cell: (Arith, XML, PTB)
    "tanh": (0.29493, 0.32050, 0.08782),
    "lstm": (0.89228, 0.42470, 0.08912),
    "lstm_f": (0.29292, 0.23356, 0.08808),
    "lstm_i": (0.75109, 0.41371, 0.08662),
    "lstm_o": (0.86747, 0.42117, 0.08933),
    "lstm_b": (0.90163, 0.44434, 0.08952),
    "gru": (0.89565, 0.45963, 0.09069),
    "mut1": (0.92135, 0.47483, 0.08968),
    "mut2": (0.89735, 0.47324, 0.09036),
    "mut3": (0.90728, 0.46478, 0.09161),
}
# Our task -> its column of Table 1. Compared on test accuracy: arith and xml generate the
# paper's data; ptb reads Mikolov's PTB. `text` (characters, Shakespeare) and `jsb` (not a
# Table 2 corpus) match no column.
TABLE1_COLUMN = {"arith": 0, "xml": 1, "ptb": 2}
TABLE1_METRIC = "accuracy"


def table1(cell: str, task: str) -> float | None:
    """The paper's Table 1 value for our (cell, task), or None where nothing matches."""
    if cell not in _TABLE1 or task not in TABLE1_COLUMN:
        return None
    return _TABLE1[cell][TABLE1_COLUMN[task]]
