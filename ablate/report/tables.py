"""Tables as Markdown, LaTeX (booktabs) and CSV, byte-identical for the same store: rows in
the order given, fixed number formats, nothing that depends on when or where it ran."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "|": r"\textbar{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}


@dataclass(frozen=True)
class Table:
    name: str  # file stem under tables/
    title: str
    frame: pd.DataFrame  # raw values; formatted only when written
    note: str = ""  # how to read it: shown under the table


def cell_text(value: Any) -> str:
    """Four significant digits for floats, integers as integers, blanks for missing."""
    if value is None or (isinstance(value, numbers.Real) and math.isnan(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else format(value, ".4g")
    return str(value)


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _rows(table: Table) -> list[list[str]]:
    return [
        [cell_text(v) for v in row] for row in table.frame.astype(object).itertuples(index=False)
    ]


def markdown(table: Table) -> str:
    header = [str(c) for c in table.frame.columns]
    align = ["---:" if _numeric(table.frame[c]) else ":---" for c in table.frame.columns]
    lines = [header, align, *_rows(table)]
    return "\n".join(
        "| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in lines
    )


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def latex(table: Table) -> str:
    spec = "".join("r" if _numeric(table.frame[c]) else "l" for c in table.frame.columns)
    body = [" & ".join(_latex_escape(c) for c in row) + r" \\" for row in _rows(table)]
    head = " & ".join(_latex_escape(str(c)) for c in table.frame.columns) + r" \\"
    return "\n".join(
        [
            r"\begin{table}[ht]",
            r"\centering",
            rf"\caption{{{_latex_escape(table.title)}}}",
            rf"\label{{tab:{table.name}}}",
            rf"\begin{{tabular}}{{{spec}}}",
            r"\toprule",
            head,
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
            "",
        ]
    )


def write(table: Table, folder: Path) -> dict[str, Path]:
    """``<name>.md``, ``<name>.tex`` and ``<name>.csv`` (full precision, 10 digits)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {ext: folder / f"{table.name}.{ext}" for ext in ("md", "tex", "csv")}
    note = f"\n\n{table.note}" if table.note else ""
    paths["md"].write_text(f"### {table.title}\n\n{markdown(table)}{note}\n")
    paths["tex"].write_text(latex(table))
    table.frame.to_csv(paths["csv"], index=False, float_format="%.10g", lineterminator="\n")
    return paths
