"""What the next-token tasks over long streams share (text, ptb, arith, xml): token ids,
truncated-BPTT windows with carried state (Jozefowicz unrolled 35 steps), a softmax head.

The state carried from window to window is the cell's whole returned state, passed on
as it is (for FGR: h, c and the previous gate activations), so the windows compute the
recurrence one pass over each row would."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ablate.tasks.base import Batch, Head, Pattern, Task, TaskDataError, check_split, require
from ablate.tasks.batching import stream_batches


class LanguageModel(Task):
    """Subclasses fill ``streams`` (token ids per split) and ``vocabulary``, optionally
    ``scored`` (which tokens count as targets) and ``starts`` (where each example begins,
    for streams of examples: evaluation rows then begin there), and set the metric."""

    tokens = True
    pattern = Pattern.NEXT_STEP
    head = Head.SOFTMAX

    streams: dict[str, np.ndarray]
    vocabulary: list[str]
    scored: dict[str, np.ndarray] | None = None
    starts: dict[str, np.ndarray] | None = None

    def __init__(self, *, bptt: int) -> None:
        require(bptt > 0, f"task.bptt: must be positive, got {bptt}")
        self.bptt = bptt

    @property
    def input_size(self) -> int:
        return len(self.vocabulary)

    @property
    def output_size(self) -> int:
        return len(self.vocabulary)

    def batches(self, split: str, batch_size: int, *, shuffle: bool, seed: int) -> Iterator[Batch]:
        check_split(split)
        stream, scored = self.split_stream(split, shuffle=shuffle, seed=seed)
        starts = None if shuffle or self.starts is None else self.starts[split]
        return stream_batches(
            stream, batch_size, self.bptt, shuffle=shuffle, seed=seed, scored=scored, starts=starts
        )

    def split_stream(
        self, split: str, *, shuffle: bool, seed: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The tokens an epoch over ``split`` reads, and which of them are scored."""
        return self.streams[split], None if self.scored is None else self.scored[split]

    def _sizes(self) -> dict[str, int]:
        sizes = {"vocabulary": len(self.vocabulary), "bptt": self.bptt}
        for split, stream in self.streams.items():
            sizes[f"{split}_tokens"] = len(stream)
            if self.scored is not None:
                sizes[f"{split}_scored_tokens"] = int(self.scored[split].sum())
        return sizes


def encode_chars(text: str, vocabulary: str, where: str) -> np.ndarray:
    """Character ids (int32) of ``text`` in ``vocabulary``; an unknown character is an error."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    table = np.full(max(map(ord, vocabulary)) + 1, -1, dtype=np.int32)
    table[[ord(c) for c in vocabulary]] = np.arange(len(vocabulary), dtype=np.int32)
    ids = table[np.minimum(codes, len(table) - 1)]
    unknown = (ids < 0) | (codes >= len(table))
    if unknown.any():
        char = chr(int(codes[np.argmax(unknown)]))
        raise TaskDataError(f"{where}: character {char!r} is not in the vocabulary")
    return ids
