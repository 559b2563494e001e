"""vowels: JapaneseVowels speaker classification, a real speech stand-in for Greff's TIMIT.

Nine speakers say /ae/; each utterance is 7-29 frames of 12 LPC cepstrum coefficients. The
data are the UEA/UCR ``.ts`` files bundled in sktime, read here without importing sktime
(its import takes seconds).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ablate.tasks.base import Pattern, TaskDataError, package_dir, require
from ablate.tasks.batching import Ragged, split_indices
from ablate.tasks.classification import Classification, standardise


def read_ts(path: Path) -> tuple[Ragged, np.ndarray, list[str]]:
    """A multivariate, labelled ``.ts`` file: the series (time, dimensions), their labels as
    indices into the header's ``@classLabel`` list, and that list."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise TaskDataError(f"{path}: unreadable ({err})") from err
    header: dict[str, list[str]] = {}
    numbered = ((n, line.strip()) for n, line in enumerate(lines, start=1))
    for _, line in numbered:
        if line and not line.startswith("#"):
            key, *values = line.split()
            header[key.lower()] = values
            if key.lower() == "@data":
                break
    require(
        {"@dimensions", "@classlabel", "@data"} <= header.keys(),
        f"{path}: header lacks @dimensions, @classLabel or @data",
    )
    dimensions, classes = int(header["@dimensions"][0]), header["@classlabel"][1:]
    series, labels = [], []
    for number, line in numbered:
        if not line:
            continue
        where = f"{path}:{number}"
        *dims, label = line.split(":")
        require(len(dims) == dimensions, f"{where}: {len(dims)} dimensions, expected {dimensions}")
        require(label in classes, f"{where}: label {label!r} not among {classes}")
        try:
            values = [np.array(d.split(","), dtype=np.float32) for d in dims]
        except ValueError as err:
            raise TaskDataError(f"{where}: bad value ({err})") from err
        require(len({len(v) for v in values}) == 1, f"{where}: dimensions of unequal length")
        require(all(np.isfinite(v).all() for v in values), f"{where}: missing or infinite value")
        series.append(np.stack(values, axis=1))
        labels.append(classes.index(label))
    require(bool(series), f"{path}: no series after @data (truncated file?)")
    return Ragged.from_list(series), np.array(labels, dtype=np.int64), classes


class Vowels(Classification):
    """Speaker classification (many-to-one) with the official 270/370 train/test split; the
    validation part is a seeded ``valid_fraction`` of the official training set. Features
    are standardised with the training part's statistics."""

    name = "vowels"
    pattern = Pattern.MANY_TO_ONE

    def __init__(self, *, valid_fraction: float = 0.2, data_seed: int = 0) -> None:
        folder = (
            package_dir("sktime", "install it with: pip install sktime")
            / "datasets"
            / "data"
            / "JapaneseVowels"
        )
        train, train_labels, classes = read_ts(folder / "JapaneseVowels_TRAIN.ts")
        test, test_labels, test_classes = read_ts(folder / "JapaneseVowels_TEST.ts")
        require(
            test_classes == classes and test.data.shape[1] == train.data.shape[1],
            f"{folder}: the test file's classes or dimensions differ from the training file's",
        )
        parts = split_indices(len(train), {"valid": valid_fraction}, data_seed, "task vowels")
        self.features = standardise(
            {
                "train": train.subset(parts["train"]),
                "valid": train.subset(parts["valid"]),
                "test": test,
            }
        )
        self.labels = {
            "train": train_labels[parts["train"]],
            "valid": train_labels[parts["valid"]],
            "test": test_labels,
        }
        self.input_size = train.data.shape[1]
        self.output_size = len(classes)
