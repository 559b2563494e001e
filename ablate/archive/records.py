"""The archive file: one parquet table holding an experiment's MLflow runs and Optuna studies.

One row per record, ``kind`` saying which: ``experiment`` (its name and tags), ``study`` (an
Optuna study: direction, user and system attributes), ``trial`` (an Optuna trial, everything
a FrozenTrial holds) and ``run`` (an MLflow run: tags, params, final metrics, per-step curves).
Nested values are JSON text (floats written with ``repr``, so they read back exactly); the
curves are float32 lists, except each key's last point, which the final metrics keep exact.
Reading validates the whole file before anything uses it, so a truncated or foreign file is
refused in one line.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ablate.errors import AblateError

FORMAT = "ablate-archive"
VERSION = 1
KINDS = ("experiment", "study", "trial", "run")

SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("name", pa.string()),  # experiment, study, run name; a trial's study
        ("number", pa.int64()),  # a trial's number, else -1
        ("run_id", pa.string()),  # a run's id as exported; a trial's run, if any
        ("parent_run_id", pa.string()),
        ("status", pa.string()),  # run status, trial state, study direction
        ("start_time", pa.int64()),  # ms since the epoch, or null
        ("end_time", pa.int64()),
        ("tags", pa.string()),  # JSON: run tags, experiment tags, study/trial user attrs
        ("params", pa.string()),  # JSON: run params; trial params (internal values)
        ("attrs", pa.string()),  # JSON: study/trial system attrs, trial distributions
        ("values", pa.string()),  # JSON: run final metrics; trial values and intermediates
        ("curve_keys", pa.list_(pa.string())),
        ("curve_steps", pa.list_(pa.list_(pa.int64()))),
        ("curve_values", pa.list_(pa.list_(pa.float32()))),
    ],
    metadata={b"format": FORMAT.encode(), b"version": str(VERSION).encode()},
)


@dataclass
class Record:
    kind: str
    name: str
    number: int = -1
    run_id: str | None = None
    parent_run_id: str | None = None
    status: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)


@dataclass
class Archive:
    experiment: Record
    studies: list[Record]
    trials: list[Record]  # in (study, number) order: the order they are recreated in
    runs: list[Record]  # study parent runs first

    def summary(self) -> str:
        jobs = sum(1 for r in self.runs if r.tags.get("ablate.kind") == "job")
        return (
            f"experiment {self.experiment.name!r}: {jobs} job runs, {len(self.studies)} "
            f"Optuna studies, {len(self.trials)} trials"
        )


def _dump(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=True)


def write(archive: Archive, path: Path) -> None:
    records = [archive.experiment, *archive.studies, *archive.trials, *archive.runs]
    columns: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    for r in records:
        keys = list(r.curves)
        for name, value in (
            ("kind", r.kind),
            ("name", r.name),
            ("number", r.number),
            ("run_id", r.run_id),
            ("parent_run_id", r.parent_run_id),
            ("status", r.status),
            ("start_time", r.start_time),
            ("end_time", r.end_time),
            ("tags", _dump(r.tags)),
            ("params", _dump(r.params)),
            ("attrs", _dump(r.attrs)),
            ("values", _dump(r.values)),
            ("curve_keys", keys),
            ("curve_steps", [r.curves[k][0] for k in keys]),
            ("curve_values", [r.curves[k][1] for k in keys]),
        ):
            columns[name].append(value)
    table = pa.Table.from_pydict(columns, schema=SCHEMA)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    pq.write_table(table, partial, compression="zstd", compression_level=9)
    partial.replace(path)  # a reader never sees half a file


def read(path: Path) -> Archive:
    """The whole archive, checked: a file that is missing, truncated, of another format or
    inconsistent is refused with one line naming the file."""
    if not path.is_file():
        raise AblateError(f"archive {path}: no such file")
    try:
        table = pq.read_table(path)
    except Exception as err:  # noqa: BLE001 - pyarrow's many errors for a bad file, one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AblateError(f"archive {path}: not a readable parquet file ({first})") from None
    meta = table.schema.metadata or {}
    if meta.get(b"format") != FORMAT.encode():
        raise AblateError(f"archive {path}: not an ablate archive (no '{FORMAT}' marker)")
    version = meta.get(b"version", b"?").decode()
    if version != str(VERSION):
        raise AblateError(f"archive {path}: format version {version}, this ablate reads {VERSION}")
    missing = [n for n in SCHEMA.names if n not in table.column_names]
    if missing:
        raise AblateError(f"archive {path}: missing columns {', '.join(missing)}")
    try:
        records = [_record(row) for row in table.to_pylist()]
    except (ValueError, TypeError, KeyError) as err:
        raise AblateError(f"archive {path}: a record does not parse ({err})") from None
    return _assemble(records, path)


def _record(row: dict[str, Any]) -> Record:
    if row["kind"] not in KINDS:
        raise ValueError(f"unknown record kind {row['kind']!r}")
    keys, steps, values = row["curve_keys"] or [], row["curve_steps"] or [], row["curve_values"]
    values = values or []
    if not len(keys) == len(steps) == len(values):
        raise ValueError(f"curves of {row['name']!r} have unequal lengths")
    curves = {}
    for key, s, v in zip(keys, steps, values, strict=True):
        if len(s) != len(v):
            raise ValueError(f"curve {key!r} of {row['name']!r}: {len(s)} steps, {len(v)} values")
        curves[key] = (list(s), [math.nan if x is None else float(x) for x in v])
    parsed = {k: json.loads(row[k]) for k in ("tags", "params", "attrs", "values")}
    for k, v in parsed.items():
        if not isinstance(v, dict):
            raise ValueError(f"{k} of {row['name']!r} is not a mapping")
    return Record(
        kind=row["kind"],
        name=str(row["name"]),
        number=int(row["number"]),
        run_id=row["run_id"],
        parent_run_id=row["parent_run_id"],
        status=row["status"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        curves=curves,
        **parsed,
    )


def _assemble(records: list[Record], path: Path) -> Archive:
    by_kind: dict[str, list[Record]] = {k: [] for k in KINDS}
    for r in records:
        by_kind[r.kind].append(r)
    if len(by_kind["experiment"]) != 1:
        raise AblateError(
            f"archive {path}: expected one experiment record, found {len(by_kind['experiment'])}"
        )
    studies = {s.name for s in by_kind["study"]}
    numbers: dict[str, list[int]] = {s: [] for s in studies}
    for t in by_kind["trial"]:
        if t.name not in studies:
            raise AblateError(f"archive {path}: trial {t.number} of unknown study {t.name!r}")
        numbers[t.name].append(t.number)
    for name, found in numbers.items():
        if sorted(found) != list(range(len(found))):
            raise AblateError(f"archive {path}: study {name!r} lacks some trial numbers")
    run_ids = {r.run_id for r in by_kind["run"]}
    for r in by_kind["run"]:
        if r.parent_run_id and r.parent_run_id not in run_ids:
            raise AblateError(f"archive {path}: run {r.run_id} has a parent that is not in it")
    runs = sorted(by_kind["run"], key=lambda r: r.parent_run_id is not None)
    trials = sorted(by_kind["trial"], key=lambda t: (t.name, t.number))
    return Archive(by_kind["experiment"][0], by_kind["study"], trials, runs)
