"""K trials' minibatches as one, and each trial's loss on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ablate.tasks import Batch, Pattern, Task


@dataclass(frozen=True)
class StackedBatch:
    """Trial k's batch is rows [k B, (k + 1) B) of ``batch``, padded in time to the longest
    (inputs and targets with zeros, the mask with False)."""

    batch: Batch
    steps: list[int]  # each trial's own number of steps
    rows: int  # B
    # Truncated-BPTT windows of different lengths: the model must then be told the lengths,
    # so that the state carried on is each window's last real step's.
    ragged: bool

    @property
    def trials(self) -> int:
        return len(self.steps)


def stack_batches(batches: Sequence[Batch]) -> StackedBatch:
    rows = batches[0].inputs.shape[0]
    carry = batches[0].carry_state
    if any(b.inputs.shape[0] != rows or b.carry_state != carry for b in batches):
        raise ValueError(
            "ablate.stack: the trials' batches differ in size "
            f"({[b.inputs.shape[0] for b in batches]}); their task cannot be stacked"
        )
    steps = [b.inputs.shape[1] for b in batches]
    longest = max(steps)

    def cat(parts: list[Tensor], per_step: bool) -> Tensor:
        if not per_step or all(p.shape[1] == longest for p in parts):
            return torch.cat(parts)
        out = parts[0].new_zeros((rows * len(parts), longest, *parts[0].shape[2:]))
        for k, p in enumerate(parts):
            out[k * rows : (k + 1) * rows, : p.shape[1]] = p
        return out

    stacked = Batch(
        inputs=cat([b.inputs for b in batches], True),
        targets=cat([b.targets for b in batches], batches[0].targets.dim() > 1),
        lengths=torch.cat([b.lengths for b in batches]),
        mask=cat([b.mask for b in batches], True),
        carry_state=carry,
    )
    return StackedBatch(stacked, steps, rows, carry and len(set(steps)) > 1)


def trial_losses(task: Task, logits: Tensor, stacked: StackedBatch) -> tuple[Tensor, Tensor]:
    """Each trial's mean loss over its scored items, (K,), as :meth:`Task.loss` computes it
    alone, and the number of those items, (K,)."""
    k, batch = stacked.trials, stacked.batch
    losses = task.position_losses(logits, batch)
    if task.pattern is Pattern.MANY_TO_ONE:
        items = torch.full((k,), stacked.rows, dtype=torch.long)
        return losses.view(k, -1).mean(1), items
    mask = batch.mask.to(losses.device)
    items = mask.view(k, -1).sum(1)
    totals = torch.where(mask, losses, 0.0).view(k, -1).sum(1)
    return totals / items.clamp(min=1), items.cpu()
