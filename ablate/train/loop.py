"""The epoch loop: train, validate, keep the best weights, checkpoint, stop by the schedule.

The loop knows nothing of MLflow or Hydra: it reports each epoch to ``on_epoch`` and returns a
:class:`TrainResult`; the app wires both to the tracking store.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from ablate.errors import AblateError
from ablate.model import SequenceModel, detach_state
from ablate.tasks import Batch, Pattern, Task
from ablate.train.callbacks import check_sweep
from ablate.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ablate.train.optim import (
    LossReduction,
    OptimConfig,
    build_optimizer,
    build_schedule,
)

log = logging.getLogger("ablate")


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


MONITORS = ("metric", "loss")


@dataclass(frozen=True)
class TrainerConfig:
    max_epochs: int = 20
    patience: int = 5
    batch_size: int = 32
    eval_batch_size: int = 256
    max_batches: int | None = None  # cap on training batches per epoch (smoke runs of long tasks)
    progress: bool | None = None  # None: a bar only when stderr is a terminal
    checkpoint: bool = True
    # What the schedule watches for improvement: the task's metric (which always selects the
    # best epoch) or the validation loss, which keeps moving while a quantised metric such as
    # accuracy sits on a plateau the model is still learning its way off.
    monitor: str = "metric"

    def __post_init__(self) -> None:
        if self.monitor not in MONITORS:
            raise AblateError(
                f"trainer.monitor must be one of {', '.join(MONITORS)}, got {self.monitor!r}"
            )
        for name in ("max_epochs", "patience", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise AblateError(f"trainer.{name} must be a positive integer, got {value!r}")
        if self.max_batches is not None and self.max_batches <= 0:
            raise AblateError(
                f"trainer.max_batches must be positive or null, got {self.max_batches}"
            )


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    valid: dict[str, float]
    seconds: float
    lr: float


@dataclass
class TrainResult:
    best_epoch: int
    best_valid: dict[str, float]
    test: dict[str, float]
    history: list[EpochRecord] = field(default_factory=list)
    train_seconds: float = 0.0
    resumed_from: int = 0


def better(task: Task, new: float, old: float | None) -> bool:
    if old is None:
        return True
    return new > old if task.higher_is_better else new < old


def schedule_improved(monitor: str, history: list[EpochRecord], improved: bool) -> bool:
    """Whether the epoch just closed (the last of ``history``) improved what the schedule
    watches; ``improved``: whether it improved the task's metric."""
    if monitor == "metric":
        return improved
    *earlier, last = history
    return all(last.valid["loss"] < record.valid["loss"] for record in earlier)


@dataclass
class Progress:
    """Where one training stands between epochs: what :meth:`Trainer.fit` carries from one
    epoch to the next, and what a group of trials (:mod:`ablate.stack`) carries per trial."""

    history: list[EpochRecord]
    best_value: float | None
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_valid: dict[str, float]
    epoch: int  # the next epoch to train
    train_seconds: float
    stopped: bool
    resumed_from: int


class Trainer:
    """Trains one model on one task; resumable from its checkpoint with identical numbers.

    ``fit`` is :meth:`start`, then :meth:`train_epoch` and :meth:`close_epoch` until
    :meth:`done`, then :meth:`finish`; a group of trials trains its epochs stacked and calls
    the same :meth:`close_epoch` for each trial, so both keep the same records.
    """

    def __init__(
        self,
        model: SequenceModel,
        task: Task,
        optim: OptimConfig,
        config: TrainerConfig,
        *,
        seed: int,
        device: torch.device,
        checkpoint_path: Path | None,
        fingerprint: str,
    ) -> None:
        self.model = model.to(device)
        self.task = task
        self.optim_config = optim
        self.config = config
        self.seed = seed
        self.device = device
        self.checkpoint_path = checkpoint_path if config.checkpoint else None
        self.fingerprint = fingerprint
        self.optimizer = build_optimizer(model.parameters(), optim)
        self.schedule = build_schedule(self.optimizer, optim, config.patience)
        # The random state training starts from (it draws the input noise): the global
        # state after the model's initialisation, which a group of trials keeps per trial.
        self.initial_rng = torch.get_rng_state()

    def resume_point(self) -> Checkpoint | None:
        """The checkpoint of an earlier attempt at this very job, if there is one."""
        if self.checkpoint_path is None:
            return None
        return load_checkpoint(self.checkpoint_path, self.fingerprint)

    def fit(
        self,
        on_epoch: Callable[[EpochRecord], None] = lambda record: None,
        resume: Checkpoint | None = None,
    ) -> TrainResult:
        progress = self.start(resume)
        if resume is not None:
            torch.set_rng_state(resume.rng)
        while not self.done(progress):
            began = time.perf_counter()
            train_loss = self.train_epoch(progress.epoch)
            self.close_epoch(
                progress, train_loss, time.perf_counter() - began, torch.get_rng_state(), on_epoch
            )
        return self.finish(progress)

    def start(self, resume: Checkpoint | None) -> Progress:
        """The progress of a fresh training, or of the checkpointed one (model, optimiser
        and schedule restored; the caller restores the random state, ``resume.rng``)."""
        if resume is None:
            return Progress([], None, _cpu_copy(self.model.state_dict()), 0, {}, 1, 0.0, False, 0)
        self.model.load_state_dict(resume.model)
        self.optimizer.load_state_dict(resume.optimizer)
        self.schedule.load_state_dict(resume.schedule)
        log.info("resuming after epoch %d from %s", resume.epoch, self.checkpoint_path)
        return Progress(
            history=[EpochRecord(**r) for r in resume.history],
            best_value=resume.best_valid.get(self.task.metric),
            best_state=resume.best_model,
            best_epoch=resume.best_epoch,
            best_valid=resume.best_valid,
            epoch=resume.epoch + 1,
            train_seconds=resume.train_seconds,
            stopped=resume.done,
            resumed_from=resume.epoch,
        )

    def done(self, progress: Progress) -> bool:
        return progress.stopped or progress.epoch > self.config.max_epochs

    def close_epoch(
        self,
        progress: Progress,
        train_loss: float,
        train_seconds: float,
        rng: torch.Tensor,
        on_epoch: Callable[[EpochRecord], None],
    ) -> None:
        """Validate the epoch just trained, keep the best weights, apply the schedule, report
        and checkpoint (with ``rng``, the random state training continues from)."""
        epoch = progress.epoch
        began = time.perf_counter()
        valid = self.evaluate("valid")
        seconds = train_seconds + time.perf_counter() - began
        progress.train_seconds += seconds
        record = EpochRecord(
            epoch, train_loss, valid, seconds, self.optimizer.param_groups[0]["lr"]
        )
        progress.history.append(record)
        value = valid[self.task.metric]
        improved = better(self.task, value, progress.best_value)
        if improved:
            progress.best_value, progress.best_epoch, progress.best_valid = value, epoch, valid
            progress.best_state = _cpu_copy(self.model.state_dict())
        progress.stopped = (
            self.schedule.after_epoch(
                schedule_improved(self.config.monitor, progress.history, improved)
            )
            or epoch == self.config.max_epochs
        )
        log.info(
            "epoch %d: train loss %.4f, valid %s %.4f%s, %.1fs",
            epoch,
            train_loss,
            self.task.metric,
            value,
            " (best)" if improved else "",
            seconds,
        )
        on_epoch(record)
        if self.checkpoint_path is not None:
            save_checkpoint(
                self.checkpoint_path,
                Checkpoint(
                    fingerprint=self.fingerprint,
                    epoch=epoch,
                    done=progress.stopped,
                    model=self.model.state_dict(),
                    optimizer=self.optimizer.state_dict(),
                    schedule=self.schedule.state_dict(),
                    rng=rng,
                    history=[r.__dict__ for r in progress.history],
                    best_model=progress.best_state,
                    best_epoch=progress.best_epoch,
                    best_valid=progress.best_valid,
                    train_seconds=progress.train_seconds,
                ),
            )
        progress.epoch += 1

    def finish(self, progress: Progress) -> TrainResult:
        """The best weights restored and tested."""
        self.model.load_state_dict(progress.best_state)
        test = self.evaluate("test")
        return TrainResult(
            progress.best_epoch,
            progress.best_valid,
            test,
            progress.history,
            progress.train_seconds,
            progress.resumed_from,
        )

    def train_epoch(self, epoch: int) -> float:
        self.model.train()
        total, count = 0.0, 0
        state: Any = None
        batches = self.task.batches(
            "train", self.config.batch_size, shuffle=True, seed=self.seed * 100_003 + epoch
        )
        show = self.config.progress if self.config.progress is not None else sys.stderr.isatty()
        bar = tqdm(batches, desc=f"epoch {epoch}", leave=False, disable=not show, unit="batch")
        for index, batch in enumerate(itertools.islice(bar, self.config.max_batches)):
            check_sweep()
            batch = batch.to(self.device)
            logits, new_state = self.model(batch, state if batch.carry_state else None)
            state = detach_state(new_state) if batch.carry_state else None
            loss = self.task.loss(logits, batch)
            value = loss.item()
            if not math.isfinite(value):
                raise Diverged(f"training loss became {value} at epoch {epoch}, batch {index + 1}")
            self.optimizer.zero_grad(set_to_none=True)
            self._scaled(loss, batch).backward()
            if self.optim_config.clip_norm is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.optim_config.clip_norm)
            self.optimizer.step()
            total += value
            count += 1
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        if count == 0:
            raise AblateError(f"task {self.task.name}: the train split gave no batches")
        return total / count

    def _scaled(self, loss: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The task's mean loss, rescaled to the reduction the optimiser's step sizes assume."""
        sequences = batch.inputs.shape[0]
        items = sequences if self.task.pattern is Pattern.MANY_TO_ONE else int(batch.mask.sum())
        return loss * reduction_factor(self.optim_config, sequences, items)

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, float]:
        self.model.eval()

        def predict(batch: Batch, state: object | None) -> tuple[torch.Tensor, object]:
            return self.model(batch.to(self.device), state)

        return self.task.evaluate(predict, split, self.config.eval_batch_size)


def reduction_factor(optim: OptimConfig, sequences: Any, items: Any) -> Any:
    """What turns the task's mean loss over ``items`` scored items of ``sequences`` sequences
    into the loss whose step sizes the optimiser's settings assume (numbers or tensors)."""
    reduction = LossReduction(optim.loss_reduction)
    if reduction is LossReduction.MEAN:
        return 1
    return items if reduction is LossReduction.SUM else items / sequences


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in copy.copy(state).items()}
