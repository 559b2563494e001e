"""digits: scikit-learn's 1,797 pen-written 8x8 digits read as a sequence, a real stand-in
for Greff's online-handwriting task (IAM-OnDB is not available offline)."""

from __future__ import annotations

import numpy as np

from ablate.tasks.base import Pattern, package_dir, require
from ablate.tasks.batching import Ragged, split_indices
from ablate.tasks.classification import Classification

# Image side, and the largest pixel value (16 ink levels) for scaling to [0, 1].
SIDE = 8
MAX_INK = 16.0
LAYOUTS = {"rows": (SIDE, SIDE), "pixels": (SIDE * SIDE, 1)}


class Digits(Classification):
    """Digit classification (many-to-one) from the image read row by row (8 steps of 8
    pixels) or pixel by pixel (64 steps of 1); pixels scaled to [0, 1]; seeded split."""

    name = "digits"
    pattern = Pattern.MANY_TO_ONE

    def __init__(
        self,
        *,
        layout: str = "rows",
        valid_fraction: float = 0.2,
        test_fraction: float = 0.2,
        data_seed: int = 0,
    ) -> None:
        require(layout in LAYOUTS, f"task.layout: {layout!r} is not one of {', '.join(LAYOUTS)}")
        package_dir("sklearn", "install it with: pip install scikit-learn")
        from sklearn.datasets import load_digits

        images, labels = load_digits(return_X_y=True)
        steps, width = LAYOUTS[layout]
        frames = (images / MAX_INK).astype(np.float32).reshape(-1, width)
        sequences = Ragged.from_lengths(frames, np.full(len(images), steps, dtype=np.int64))
        parts = split_indices(
            len(images), {"valid": valid_fraction, "test": test_fraction}, data_seed, "task digits"
        )
        self.features = {split: sequences.subset(idx) for split, idx in parts.items()}
        self.labels = {split: labels[idx].astype(np.int64) for split, idx in parts.items()}
        self.input_size = width
        self.output_size = int(labels.max()) + 1
