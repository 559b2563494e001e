"""Train a group of trials as one stacked model, each trial keeping its own records.

Every trial is a :class:`Trainer` built as it would be alone (its seed, initialisation,
optimiser, schedule and checkpoint path). The group trains their epochs together; between
epochs each trial's weights and optimiser state are written back to its own trainer, which
then validates, reports, checkpoints and applies its schedule with the same code as alone
(:meth:`Trainer.close_epoch`). A trial that diverges, is pruned or stops early leaves the
stack at once; the others go on.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import torch

from ablate.cells import compiled
from ablate.cells.kernels import supports
from ablate.cells.spec import Source, StateKind
from ablate.model import detach_state
from ablate.stack.batches import stack_batches, trial_losses
from ablate.stack.model import StackedModel
from ablate.stack.optim import StackedOptimizer
from ablate.tasks import Batch
from ablate.train.callbacks import check_sweep
from ablate.train.checkpoint import Checkpoint
from ablate.train.loop import (
    Diverged,
    EpochRecord,
    Progress,
    Trainer,
    TrainResult,
    reduction_factor,
)

Outcome = TrainResult | BaseException


@dataclass
class GroupMember:
    """One trial of a group: its trainer, the checkpoint it resumes from, what hears of each
    epoch (it may raise, e.g. a pruned trial: the trial then ends with that error), and the
    context its epochs close in (e.g. its own log file)."""

    trainer: Trainer
    resume: Checkpoint | None = None
    on_epoch: Callable[[EpochRecord], None] = field(default=lambda record: None)
    scope: Callable[[], AbstractContextManager[object]] = field(default=nullcontext)


def can_stack(trainers: Sequence[Trainer]) -> str | None:
    """Why these trials cannot train as one stacked model, or None if they can."""
    first = trainers[0]
    rnn = first.model.rnn
    if any(t.device.type != "cpu" for t in trainers):
        return "stacked trials run the C++ kernels, on the CPU"
    if not supports(rnn.spec) or compiled.kernels() is None:
        return f"cell {rnn.spec.name!r} has no C++ kernel here"
    if rnn.spec.kind is StateKind.SLSTM:
        return "the sLSTM's heads split its units: padded hidden sizes would move them"
    if rnn.num_layers > 1 and any(t.model.rnn.dropout > 0 for t in trainers):
        return "dropout between layers draws one mask for the whole stack"
    for t in trainers[1:]:
        other = t.model.rnn
        same = (
            other.spec == rnn.spec
            and other.input_size == rnn.input_size
            and other.num_layers == rnn.num_layers
            and other.bidirectional == rnn.bidirectional
            and t.task.name == first.task.name
            and t.config.batch_size == first.config.batch_size
            and t.config.max_batches == first.config.max_batches
            and t.optim_config.name == first.optim_config.name
            and t.optim_config.nesterov == first.optim_config.nesterov
            and t.optim_config.loss_reduction == first.optim_config.loss_reduction
            and next(t.model.parameters()).dtype == next(first.model.parameters()).dtype
        )
        if not same:
            return "the trials differ in more than their per-trial settings and hidden size"
    raw = any(s in (Source.X, Source.TANH_X) for part in rnn.spec.sources.values() for s in part)
    if raw and len({t.model.rnn.hidden_size for t in trainers}) > 1:
        return f"cell {rnn.spec.name!r} adds raw x to its units: only equal hidden sizes stack"
    return None


def train_group(members: Sequence[GroupMember]) -> list[Outcome]:
    """Each member's :class:`TrainResult`, or the error that ended it (``Diverged``, or what
    its ``on_epoch`` raised), in the members' order."""
    trainers = [m.trainer for m in members]
    reason = can_stack(trainers)
    if reason is not None:
        raise ValueError(f"ablate.stack: cannot stack these trials: {reason}")
    progress = [t.start(m.resume) for t, m in zip(trainers, members, strict=True)]
    rng = [m.resume.rng if m.resume is not None else m.trainer.initial_rng for m in members]
    outcomes: list[Outcome | None] = [None] * len(members)
    active = [k for k, t in enumerate(trainers) if not t.done(progress[k])]
    if active:
        _train(members, progress, rng, active, outcomes)
    for k, t in enumerate(trainers):
        if outcomes[k] is None:
            outcomes[k] = t.finish(progress[k])
    return [o for o in outcomes if o is not None]


def _train(
    members: Sequence[GroupMember],
    progress: list[Progress],
    rng: list[torch.Tensor],
    active: list[int],
    outcomes: list[Outcome | None],
) -> None:
    trainers = [m.trainer for m in members]
    model = StackedModel([trainers[k].model for k in active], [rng[k] for k in active])
    optimizer = StackedOptimizer(
        model,
        [trainers[k].optim_config for k in active],
        [trainers[k].optimizer for k in active],
    )
    # Each trial reads its own task (its data may depend on its seed: a task's data_seed);
    # the tasks share their kind, which scores the stacked logits.
    task, config = trainers[active[0]].task, trainers[active[0]].config

    def keep(positions: list[int]) -> None:
        nonlocal active
        model.keep(positions)
        optimizer.keep(positions)
        active = [active[j] for j in positions]

    while active:
        began = time.perf_counter()
        model.train()
        epochs = [progress[k].epoch for k in active]
        streams = [
            itertools.islice(
                trainers[k].task.batches(
                    "train",
                    config.batch_size,
                    shuffle=True,
                    seed=trainers[k].seed * 100_003 + progress[k].epoch,
                ),
                config.max_batches,
            )
            for k in active
        ]
        totals = [0.0] * len(active)
        count, state = 0, None
        index = 0
        while batches := _next_batches(streams):
            check_sweep()
            stacked = stack_batches(batches)
            logits, new_state = model(stacked, state if stacked.batch.carry_state else None)
            means, items = trial_losses(task, logits, stacked)
            values = means.tolist()
            finite = [math.isfinite(v) for v in values]
            factor = reduction_factor(
                trainers[active[0]].optim_config, stacked.rows, items.to(means.dtype)
            )
            optimizer.zero_grad()
            loss = torch.where(torch.tensor(finite), means * factor, 0.0).sum()
            loss.backward()
            if not all(finite):
                for j, ok in enumerate(finite):
                    if not ok:
                        outcomes[active[j]] = Diverged(
                            f"training loss became {values[j]} at epoch {epochs[j]}, "
                            f"batch {index + 1}"
                        )
                kept = [j for j, ok in enumerate(finite) if ok]
                state = _rows(new_state, kept, stacked.rows)
                keep(kept)
                streams = [streams[j] for j in kept]
                totals = [totals[j] for j in kept]
                epochs = [epochs[j] for j in kept]
                values = [values[j] for j in kept]
                if not active:
                    return
            else:
                state = new_state
            state = detach_state(state) if stacked.batch.carry_state else None
            model.mask_gradients()
            optimizer.clip()
            optimizer.step()
            totals = [t + v for t, v in zip(totals, values, strict=True)]
            count += 1
            index += 1
        if count == 0:
            raise ValueError(f"task {task.name}: the train split gave no batches")
        # The epoch's time is the group's, shared equally by its trials.
        share = (time.perf_counter() - began) / len(active)
        going = []
        for j, k in enumerate(active):
            trainer = trainers[k]
            model.write_back(j, trainer.model)
            optimizer.store(j, trainer.optimizer)
            try:
                with members[k].scope():
                    trainer.close_epoch(
                        progress[k], totals[j] / count, share, model.rng[j], members[k].on_epoch
                    )
            except Exception as err:  # noqa: BLE001 - the trial ends with it; the others go on
                outcomes[k] = err
                continue
            optimizer.refresh(j, trainer.optimizer)
            if not trainer.done(progress[k]):
                going.append(j)
        if len(going) < len(active):
            keep(going)


def _next_batches(streams: list[Iterator[Batch]]) -> list[Batch]:
    """Each trial's next training batch; none at the end of the epoch."""
    batches = [next(stream, None) for stream in streams]
    if all(b is None for b in batches):
        return []
    if any(b is None for b in batches):
        raise ValueError("ablate.stack: the trials' train splits have different numbers of batches")
    return [b for b in batches if b is not None]


def _rows(state: object, kept: list[int], rows: int) -> object:
    """The carried state of the kept trials' rows."""
    if state is None:
        return None
    index = torch.cat([torch.arange(j * rows, (j + 1) * rows) for j in kept])
    if isinstance(state, tuple):
        return tuple(s.index_select(1, index) for s in state)
    assert isinstance(state, torch.Tensor)
    return state.index_select(1, index)
