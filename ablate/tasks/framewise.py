"""framewise: per-frame classification of user-given feature sequences, Greff's TIMIT
setup (a label per frame, bidirectional models allowed, frame error).

``data_dir`` holds ``train.npz``, ``valid.npz`` and ``test.npz``, each with three arrays
(object arrays are refused: files are read with ``allow_pickle=False``):
  features  float (total frames, F), the sequences one after another
  lengths   int (S,), the frames of each sequence (positive, summing to the total)
  labels    int (total frames,), the class of every frame, in [0, num_classes)
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ablate.tasks.base import SPLITS, Pattern, TaskDataError, require
from ablate.tasks.batching import Ragged
from ablate.tasks.classification import Classification

ARRAYS = ("features", "lengths", "labels")


def read_split(path: Path) -> tuple[Ragged, Ragged]:
    """One split's features and frame labels, checked."""
    require(path.is_file(), f"{path}: file not found")
    # Not a zip (random or truncated bytes, a lone .npy): numpy would talk of pickles.
    require(
        zipfile.is_zipfile(path),
        f"{path}: not a readable .npz file: the file is not a valid .npz "
        "(a zip archive of .npy arrays, as numpy.savez writes)",
    )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in ARRAYS if name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise TaskDataError(f"{path}: not a readable .npz file ({err})") from err
    missing = [name for name in ARRAYS if name not in arrays]
    require(not missing, f"{path}: missing array(s) {', '.join(missing)}")
    features, lengths, labels = (arrays[name] for name in ARRAYS)
    require(
        features.ndim == 2 and np.issubdtype(features.dtype, np.number),
        f"{path}: features must be a numeric (frames, F) array, "
        f"got {features.dtype} {features.shape}",
    )
    require(np.isfinite(features).all(), f"{path}: features contain NaN or infinity")
    require(
        lengths.ndim == 1 and np.issubdtype(lengths.dtype, np.integer) and len(lengths) > 0,
        f"{path}: lengths must be a non-empty int (S,) array",
    )
    require(bool((lengths > 0).all()), f"{path}: lengths must be positive")
    require(
        int(lengths.sum()) == len(features),
        f"{path}: lengths sum to {int(lengths.sum())} but features have {len(features)} frames",
    )
    require(
        labels.shape == (len(features),) and np.issubdtype(labels.dtype, np.integer),
        f"{path}: labels must be an int array of {len(features)} frames, got {labels.dtype} "
        f"{labels.shape}",
    )
    require(bool((labels >= 0).all()), f"{path}: negative label")
    lengths = lengths.astype(np.int64)
    return (
        Ragged.from_lengths(features.astype(np.float32), lengths),
        Ragged.from_lengths(labels.astype(np.int64), lengths),
    )


class Framewise(Classification):
    """A class for every frame; error is the fraction of frames misclassified."""

    name = "framewise"
    pattern = Pattern.FRAMEWISE

    def __init__(self, *, data_dir: str | None = None, num_classes: int | None = None) -> None:
        require(
            data_dir is not None,
            "task.data_dir is required: a folder with train.npz, valid.npz and test.npz",
        )
        folder = Path(str(data_dir)).expanduser()
        require(folder.is_dir(), f"{folder}: task.data_dir is not a folder")
        read = {split: read_split(folder / f"{split}.npz") for split in SPLITS}
        self.features = {split: features for split, (features, _) in read.items()}
        labels = {split: frame_labels for split, (_, frame_labels) in read.items()}
        self.labels = dict(labels)
        self.input_size = self.features["train"].data.shape[1]
        self.output_size = (
            int(labels["train"].data.max()) + 1 if num_classes is None else num_classes
        )
        require(self.output_size > 1, f"task.num_classes: need at least 2, got {self.output_size}")
        for split in SPLITS:
            path = folder / f"{split}.npz"
            require(
                self.features[split].data.shape[1] == self.input_size,
                f"{path}: {self.features[split].data.shape[1]} features per frame, train.npz "
                f"has {self.input_size}",
            )
            top = int(labels[split].data.max())
            require(
                top < self.output_size,
                f"{path}: label {top} outside the {self.output_size} classes "
                + ("seen in train.npz" if num_classes is None else "of task.num_classes"),
            )
