"""Splitting and batching shared by the tasks: seeded splits, padded batches of
variable-length sequences, and truncated-BPTT windows over long token streams."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ablate.tasks.base import Batch, require


@dataclass(frozen=True)
class Ragged:
    """Variable-length sequences stored flat: ``data[offsets[i]:offsets[i + 1]]`` is one."""

    data: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_list(cls, sequences: Sequence[np.ndarray]) -> Ragged:
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        return cls.from_lengths(np.concatenate(sequences), lengths)

    @classmethod
    def from_lengths(cls, data: np.ndarray, lengths: np.ndarray) -> Ragged:
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(data, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.data[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, indices: Sequence[int] | np.ndarray) -> Ragged:
        return Ragged.from_list([self[i] for i in indices])

    def padded(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The chosen sequences zero-padded to the longest, as a tensor (bool becomes float,
        integers become long), and their lengths."""
        lengths = self.lengths[indices]
        out = np.zeros((len(indices), int(lengths.max()), *self.data.shape[1:]), self.data.dtype)
        for row, i in enumerate(indices):
            out[row, : lengths[row]] = self[i]
        return _tensor(out), torch.from_numpy(lengths)


def _tensor(array: np.ndarray) -> torch.Tensor:
    if array.dtype == np.bool_ or np.issubdtype(array.dtype, np.floating):
        return torch.from_numpy(array.astype(np.float32))
    return torch.from_numpy(array.astype(np.int64))


def split_indices(
    n: int, fractions: dict[str, float], seed: int, what: str
) -> dict[str, np.ndarray]:
    """A seeded random split of ``n`` items: each named split gets its fraction (rounded),
    "train" the rest; every split non-empty, each sorted."""
    order = np.random.default_rng(seed).permutation(n)
    sizes = {split: round(n * fraction) for split, fraction in fractions.items()}
    sizes = {"train": n - sum(sizes.values()), **sizes}
    require(
        min(sizes.values()) > 0,
        f"{what}: {n} items give an empty split "
        f"({', '.join(f'{k} {v}' for k, v in sizes.items())}); change the fractions",
    )
    bounds = np.cumsum([0, *sizes.values()])
    return {
        split: np.sort(order[start:stop])
        for split, start, stop in zip(sizes, bounds[:-1], bounds[1:], strict=True)
    }


def batch_order(n: int, batch_size: int, *, shuffle: bool, seed: int) -> Iterator[np.ndarray]:
    """Index chunks of size ``batch_size`` (the last may be smaller)."""
    require(batch_size > 0, f"batch_size must be positive, got {batch_size}")
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def _valid_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    return torch.arange(steps)[None, :] < lengths[:, None]


def padded_batches(
    inputs: Ragged,
    targets: Ragged | np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
) -> Iterator[Batch]:
    """Classification batches: one label per sequence (``targets`` an array) or one per
    frame (``targets`` ragged like ``inputs``)."""
    for idx in batch_order(len(inputs), batch_size, shuffle=shuffle, seed=seed):
        x, lengths = inputs.padded(idx)
        y = targets.padded(idx)[0] if isinstance(targets, Ragged) else _tensor(targets[idx])
        yield Batch(x, y, lengths, _valid_mask(lengths, x.shape[1]), carry_state=False)


def next_step_batches(
    sequences: Ragged, batch_size: int, *, shuffle: bool, seed: int
) -> Iterator[Batch]:
    """Next-step prediction over whole sequences: input frames 0..L-2, target frames 1..L-1."""
    for idx in batch_order(len(sequences), batch_size, shuffle=shuffle, seed=seed):
        padded, lengths = sequences.padded(idx)
        lengths = lengths - 1
        mask = _valid_mask(lengths, padded.shape[1] - 1)
        x, y = padded[:, :-1].clone(), padded[:, 1:]
        x[~mask] = 0  # a sequence's last frame is a target only: keep it out of the padding
        yield Batch(x, y, lengths, mask, carry_state=False)


def stream_batches(
    stream: np.ndarray,
    batch_size: int,
    bptt: int,
    *,
    shuffle: bool,
    seed: int,
    scored: np.ndarray | None = None,
    starts: np.ndarray | None = None,
) -> Iterator[Batch]:
    """Truncated-BPTT windows: the stream cut into ``batch_size`` contiguous rows, read
    ``bptt`` steps at a time, so each window continues the previous one's rows
    (``carry_state``: the caller hands each window the whole state the model returned for
    the previous one, whatever the cell keeps in it).

    Windows cannot be shuffled without breaking the carried state; ``shuffle`` instead starts
    the stream at a seeded offset below ``bptt``, so window boundaries move between epochs.
    ``scored[i]`` says whether ``stream[i]`` counts as a target (default: every token).

    ``starts`` (sorted positions where an example begins; not with ``shuffle``) moves each
    row's start to the nearest example start at or after its share, so no row begins inside
    an example, whose answer would then follow a question the row never read. Rows then
    differ in length; the shorter ones end in masked padding. The targets are the same
    either way: every token after the first, once."""
    require(
        batch_size > 0 and bptt > 0, f"batch_size and bptt must be positive: {batch_size}, {bptt}"
    )
    require(starts is None or not shuffle, "stream_batches: starts only for unshuffled reads")
    offset = int(np.random.default_rng(seed).integers(bptt)) if shuffle else 0
    steps = (len(stream) - 1 - offset) // batch_size
    require(
        steps > 0,
        f"a stream of {len(stream)} tokens is too short for {batch_size} rows; lower the "
        "batch size (trainer.batch_size or trainer.eval_batch_size)",
    )
    if scored is None:
        scored = np.ones(len(stream), dtype=np.bool_)
    if starts is None:
        end = offset + steps * batch_size
        x = torch.from_numpy(stream[offset:end].astype(np.int64)).view(batch_size, steps)
        y = torch.from_numpy(stream[offset + 1 : end + 1].astype(np.int64)).view(batch_size, steps)
        mask = torch.from_numpy(scored[offset + 1 : end + 1].astype(np.bool_))
        mask = mask.view(batch_size, steps)
    else:
        x, y, mask = _aligned_rows(stream, scored, batch_size, starts)
    for start in range(0, x.shape[1], bptt):
        window = slice(start, min(start + bptt, x.shape[1]))
        yield Batch(
            x[:, window].contiguous(),
            y[:, window].contiguous(),
            torch.full((x.shape[0],), window.stop - window.start, dtype=torch.int64),
            mask[:, window].contiguous(),
            carry_state=True,
        )


def _aligned_rows(
    stream: np.ndarray, scored: np.ndarray, rows: int, starts: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs, targets and mask of at most ``rows`` rows over the whole stream, each row
    beginning where an example does (fewer rows when examples are too few)."""
    inputs = len(stream) - 1  # every token but the last is an input
    shares = np.linspace(0, inputs, rows + 1)[1:-1]
    allowed = starts[(starts > 0) & (starts < inputs)]
    moved = allowed[np.minimum(np.searchsorted(allowed, shares), len(allowed) - 1)]
    bounds = np.unique(np.concatenate([[0], moved if len(allowed) else [], [inputs]]))
    bounds = bounds.astype(np.int64)
    width = int(np.diff(bounds).max())
    x = np.zeros((len(bounds) - 1, width), dtype=np.int64)
    y = np.zeros_like(x)
    mask = np.zeros(x.shape, dtype=np.bool_)
    for row, (begin, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        x[row, : stop - begin] = stream[begin:stop]
        y[row, : stop - begin] = stream[begin + 1 : stop + 1]
        mask[row, : stop - begin] = scored[begin + 1 : stop + 1]
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(mask)
