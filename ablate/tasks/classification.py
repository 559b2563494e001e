"""What the classification tasks share: padded batches of feature sequences, a softmax head
and the classification error (vowels and digits label sequences, framewise labels frames)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ablate.tasks.base import Batch, Head, Task, check_split
from ablate.tasks.batching import Ragged, padded_batches


class Classification(Task):
    """Subclasses fill ``features`` (float sequences per split) and ``labels`` (one int per
    sequence, or a ragged int label per frame), and set ``pattern`` and the sizes."""

    tokens = False
    head = Head.SOFTMAX
    metric = "error"
    higher_is_better = False
    reported = ("error", "accuracy")

    features: dict[str, Ragged]
    labels: dict[str, Ragged | np.ndarray]

    def batches(self, split: str, batch_size: int, *, shuffle: bool, seed: int) -> Iterator[Batch]:
        check_split(split)
        return padded_batches(
            self.features[split], self.labels[split], batch_size, shuffle=shuffle, seed=seed
        )

    def _sizes(self) -> dict[str, int]:
        sizes = {}
        for split, features in self.features.items():
            sizes[f"{split}_sequences"] = len(features)
            sizes[f"{split}_frames"] = int(features.lengths.sum())
        return sizes


def standardise(features: dict[str, Ragged], reference: str = "train") -> dict[str, Ragged]:
    """Zero mean, unit variance per feature, with the statistics of the training split only."""
    mean = features[reference].data.mean(axis=0)
    std = features[reference].data.std(axis=0)
    std[std == 0] = 1.0
    return {
        split: Ragged(((f.data - mean) / std).astype(np.float32), f.offsets)
        for split, f in features.items()
    }
