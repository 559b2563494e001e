"""What every task shares: the batch, the task interface, its loss and its metrics.

A task owns its data and its scoring so that the trainer never needs to know which task it
runs: it asks for batches, feeds logits back to :meth:`Task.loss`, and lets
:meth:`Task.evaluate` drive a model over a whole split.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ablate.errors import AblateError

SPLITS = ("train", "valid", "test")

# A finite stand-in for "infinitely bad", so that a diverged run still sorts and plots.
WORST_LOSS_METRIC = 1e9


class TaskDataError(AblateError):
    """Bad data or bad task options; the message is one line naming the file or option."""


class Pattern(StrEnum):
    MANY_TO_ONE = "many_to_one"
    FRAMEWISE = "framewise"
    NEXT_STEP = "next_step"


class Head(StrEnum):
    """The nonlinearity after the model's final linear layer (the loss applies it)."""

    SOFTMAX = "softmax"
    SIGMOID = "sigmoid"


@dataclass(frozen=True)
class Batch:
    """One minibatch.

    inputs: float (B, T, input_size), or long (B, T) token ids when the task has tokens.
    targets: long (B,) for many-to-one; long (B, T) for softmax per step; float (B, T, O)
        for sigmoid per step.
    lengths: long (B,) true lengths, kept on the CPU (packing needs them there).
    mask: bool (B, T), the positions the loss and metrics score; for many-to-one the valid
        (unpadded) frames, the loss itself uses only the one prediction per sequence.
    carry_state: the batch continues the previous batch's rows (truncated BPTT windows).
    """

    inputs: Tensor
    targets: Tensor
    lengths: Tensor
    mask: Tensor
    carry_state: bool

    def to(self, device: torch.device | str) -> Batch:
        return dataclasses.replace(
            self,
            inputs=self.inputs.to(device),
            targets=self.targets.to(device),
            mask=self.mask.to(device),
        )


Predict = Callable[[Batch, object | None], tuple[Tensor, object | None]]

# Every metric a task may report, from the mean loss over scored items and the accuracy.
_DERIVED: dict[str, Callable[[float, float], float]] = {
    "error": lambda loss, acc: 1.0 - acc,
    "accuracy": lambda loss, acc: acc,
    "nll": lambda loss, acc: loss,
    "bpc": lambda loss, acc: loss / math.log(2),
    "perplexity": lambda loss, acc: math.exp(min(loss, 700.0)),
}


class Task(ABC):
    """A data set together with how to batch it and how to score a model on it.

    Subclasses set the class attributes and ``input_size``/``output_size`` (which may depend
    on the data), and implement :meth:`batches` and :meth:`_sizes`.
    """

    name: ClassVar[str]
    tokens: ClassVar[bool]
    pattern: ClassVar[Pattern]
    head: ClassVar[Head]
    metric: ClassVar[str]
    higher_is_better: ClassVar[bool]
    # Metrics reported besides "loss", the primary one first (keys of _DERIVED).
    reported: ClassVar[tuple[str, ...]]

    input_size: int
    output_size: int

    @property
    def bidirectional_ok(self) -> bool:
        """A bidirectional model would see the future it is asked to predict."""
        return self.pattern is not Pattern.NEXT_STEP

    @abstractmethod
    def batches(self, split: str, batch_size: int, *, shuffle: bool, seed: int) -> Iterator[Batch]:
        """The split's minibatches in an order fixed by ``seed`` (when ``shuffle``)."""

    @abstractmethod
    def _sizes(self) -> dict[str, int]:
        """Split sizes and the like, for :meth:`describe`."""

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """Mean loss over the scored positions (zero, still differentiable, if there are none)."""
        losses = self._item_losses(logits, batch)
        return losses.mean() if losses.numel() else logits.sum() * 0.0

    def evaluate(self, predict: Predict, split: str, batch_size: int) -> dict[str, float]:
        """Every metric of the task on ``split``; the caller runs it under ``torch.no_grad``."""
        loss_sum, hits, count = 0.0, 0, 0
        state: object | None = None
        for batch in self.batches(split, batch_size, shuffle=False, seed=0):
            logits, new_state = predict(batch, state if batch.carry_state else None)
            state = new_state if batch.carry_state else None
            batch = batch.to(logits.device)  # the model may run elsewhere
            losses = self._item_losses(logits, batch)
            loss_sum += float(losses.sum())
            count += losses.numel()
            if self.head is Head.SOFTMAX:
                hits += int(self._item_hits(logits, batch).sum())
        if count == 0:
            raise TaskDataError(f"task {self.name}: split {split!r} has no scored positions")
        loss, accuracy = loss_sum / count, hits / count
        return {"loss": loss, **{m: _DERIVED[m](loss, accuracy) for m in self.reported}}

    def check_batch_sizes(self, batch_size: int, eval_batch_size: int) -> None:
        """Refuse, before any training, batch sizes a split cannot be batched with: training
        reads ``train`` in batches of ``batch_size``, evaluation the others in batches of
        ``eval_batch_size``. This builds each split's first batch; a task may override it
        with an exact check of its own."""
        for split in SPLITS:
            train = split == "train"
            size = batch_size if train else eval_batch_size
            setting = "trainer.batch_size" if train else "trainer.eval_batch_size"
            try:
                next(iter(self.batches(split, size, shuffle=False, seed=0)), None)
            except TaskDataError as err:
                raise TaskDataError(
                    f"task {self.name}, {split} split, {setting}={size}: {err}"
                ) from None

    def worst_value(self) -> float:
        if self.higher_is_better:
            return 0.0
        return 1.0 if self.metric == "error" else WORST_LOSS_METRIC

    def describe(self) -> dict[str, object]:
        return {
            "task": self.name,
            "pattern": str(self.pattern),
            "head": str(self.head),
            "tokens": self.tokens,
            "input_size": self.input_size,
            "output_size": self.output_size,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "bidirectional_ok": self.bidirectional_ok,
            **self._sizes(),
        }

    def _item_losses(self, logits: Tensor, batch: Batch) -> Tensor:
        """One loss per scored item: per sequence, per position, or per frame (sigmoid,
        summed over the output units)."""
        losses = self.position_losses(logits, batch)
        return losses if self.pattern is Pattern.MANY_TO_ONE else losses[batch.mask]

    def position_losses(self, logits: Tensor, batch: Batch) -> Tensor:
        """The loss of every sequence (B,) or every position (B, T), scored or not (padded
        targets are valid zeros): a group of stacked trials masks them per trial."""
        if self.pattern is Pattern.MANY_TO_ONE:
            return F.cross_entropy(logits, batch.targets, reduction="none")
        if self.head is Head.SIGMOID:
            bce = F.binary_cross_entropy_with_logits(logits, batch.targets, reduction="none")
            return bce.sum(-1)
        flat = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1), reduction="none"
        )
        return flat.view(batch.targets.shape)

    def _item_hits(self, logits: Tensor, batch: Batch) -> Tensor:
        if self.pattern is Pattern.MANY_TO_ONE:
            return logits.argmax(-1) == batch.targets
        return logits[batch.mask].argmax(-1) == batch.targets[batch.mask]


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise TaskDataError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")


def require(ok: bool, message: str) -> None:
    """Raise the one-line :class:`TaskDataError` when an option or a file is wrong."""
    if not ok:
        raise TaskDataError(message)


def package_dir(package: str, install: str) -> Path:
    """An installed package's folder, found without importing it (some imports are slow,
    some packages carry stale dependencies their data files do not need)."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    require(bool(locations), f"package {package!r} is not installed; {install}")
    return Path(locations[0])
