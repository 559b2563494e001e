"""Shared by the task tests: small options for every task, writers for the files of the
tasks that read user data, and a tiny recurrent model to drive evaluate()."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ablate.tasks import Batch, Pattern, Task

# Small options for every task, so the whole suite builds in seconds.
SMALL: dict[str, dict[str, object]] = {
    "jsb": {"max_chorales": 12},
    "vowels": {},
    "digits": {},
    "arith": {"train_examples": 300, "valid_examples": 60, "test_examples": 60},
    "xml": {"train_examples": 200, "valid_examples": 40, "test_examples": 40},
    "text": {},
    "ptb": {},
    "framewise": {},
    "counting": {"n_train": 6, "n_max": 16, "train_repeats": 3},
}

PTB_SENTENCES = [
    "the cat sat on the mat",
    "a dog ate the <unk>",
    "the dog sat on a cat",
    "N cats ate N dogs",
]


def write_ptb(folder: Path) -> Path:
    """Tiny ptb.*.txt files (valid and test use only training words)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, lines in {"train": 60, "valid": 20, "test": 20}.items():
        chosen = rng.choice(PTB_SENTENCES, size=lines)
        (folder / f"ptb.{split}.txt").write_text("".join(f" {s} \n" for s in chosen))
    return folder


def write_framewise(folder: Path, features: int = 3, classes: int = 4) -> Path:
    """Tiny train/valid/test .npz files: the label of a frame is the argmax of its features."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for split, sequences in {"train": 20, "valid": 6, "test": 6}.items():
        lengths = rng.integers(3, 9, size=sequences)
        frames = rng.normal(size=(int(lengths.sum()), features)).astype(np.float32)
        labels = frames.argmax(axis=1) + (classes - features)
        np.savez(folder / f"{split}.npz", features=frames, lengths=lengths, labels=labels)
    return folder


class TinyModel(nn.Module):
    """The smallest model that fits any task: embedding or dense input, a GRU, a linear head."""

    def __init__(self, task: Task, hidden: int = 16) -> None:
        super().__init__()
        self.task = task
        self.embed = (
            nn.Embedding(task.input_size, hidden)
            if task.tokens
            else nn.Linear(task.input_size, hidden)
        )
        self.rnn = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, task.output_size)

    def forward(
        self, batch: Batch, state: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out, state = self.rnn(self.embed(batch.inputs), state)
        if self.task.pattern is Pattern.MANY_TO_ONE:
            out = out[torch.arange(len(out)), batch.lengths - 1]
        return self.head(out), state
