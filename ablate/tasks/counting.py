"""counting: Weiss et al. 2018's counting languages a^n b^n and a^n b^n c^n.

A model learns next-symbol prediction on the strings with n up to ``n_train`` and is then
used as a recogniser: it accepts a string when every actual next symbol, the end symbol
included, gets probability above ``threshold`` (the rule of the authors' demo). How far that
acceptance reaches beyond the training range measures whether the cell can count.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ablate.tasks.base import (
    Batch,
    Head,
    Pattern,
    Predict,
    Task,
    TaskDataError,
    check_split,
    require,
)
from ablate.tasks.batching import Ragged, next_step_batches

BEGIN, END = "^", "$"
LANGUAGES = {"anbn": "ab", "anbncn": "abc"}


def leading_run(accepted: list[bool]) -> int:
    """The generalisation limit: the largest n with every n' <= n accepted (strings for
    n = 1, 2, ... in order)."""
    return accepted.index(False) if False in accepted else len(accepted)


class Counting(Task):
    """Strings ``^ a^n b^n [c^n] $`` as next-symbol prediction (the begin symbol is input
    only). Train: n = 1..n_train, each repeated ``train_repeats`` times; valid: n = 1..n_train,
    one string each (the training range: model selection never sees longer strings); test:
    n = 1..n_max, one string each.

    Metrics, each "the largest n such that every n' <= n is accepted" under a rule:
    ``generalisation_limit`` (Weiss's rule above), ``counting_limit`` (Weiss's rule, and at
    every step whose next symbol is forced, i.e. all but those after an "a", that symbol is the
    most probable one: the model must know when the b's [and c's] end, which a predictor that
    merely spreads its mass over every symbol does not), ``strict_limit`` (Weiss's rule, and
    every illegal next symbol at or below ``threshold``: the recogniser also rejects every
    one-symbol corruption of the string); ``accept_at_2x`` (1.0 if n = 2 n_train is accepted by
    the counting rule; test only) and ``loss``, the mean cross-entropy per symbol."""

    name = "counting"
    tokens = True
    pattern = Pattern.NEXT_STEP
    head = Head.SOFTMAX
    # Early stopping and model selection need a value with signal from the first epoch: the
    # acceptance limits sit at 0 until the counter works, and a run selected on them keeps
    # its untrained first epoch.
    metric = "loss"
    higher_is_better = False
    reported = ()

    def __init__(
        self,
        *,
        language: str = "anbn",
        n_train: int = 50,
        n_max: int = 200,
        train_repeats: int = 20,
        threshold: float = 0.005,
    ) -> None:
        require(
            language in LANGUAGES,
            f"task.language: {language!r} is not one of {', '.join(LANGUAGES)}",
        )
        require(n_train > 0, f"task.n_train: must be positive, got {n_train}")
        require(n_max >= 2 * n_train, f"task.n_max: must be at least 2 x n_train, got {n_max}")
        require(train_repeats > 0, f"task.train_repeats: must be positive, got {train_repeats}")
        require(0 < threshold < 1, f"task.threshold: must lie in (0, 1), got {threshold}")
        self.language, self.n_train, self.threshold = language, n_train, threshold
        self.letters = LANGUAGES[language]
        self.vocabulary = [BEGIN, *self.letters, END]
        self.input_size = self.output_size = len(self.vocabulary)
        self.eval_ns = {
            "train": list(range(1, n_train + 1)),
            "valid": list(range(1, n_train + 1)),
            "test": list(range(1, n_max + 1)),
        }
        self.eval_strings = {split: self._strings(ns) for split, ns in self.eval_ns.items()}
        self.train_strings = self._strings(self.eval_ns["train"] * train_repeats)

    def _strings(self, ns: list[int]) -> Ragged:
        def ids(n: int) -> np.ndarray:
            return np.repeat(np.arange(len(self.vocabulary)), [1, *[n] * len(self.letters), 1])

        return Ragged.from_list([ids(n) for n in ns])

    def batches(self, split: str, batch_size: int, *, shuffle: bool, seed: int) -> Iterator[Batch]:
        check_split(split)
        strings = self.train_strings if split == "train" else self.eval_strings[split]
        return next_step_batches(strings, batch_size, shuffle=shuffle, seed=seed)

    def evaluate(self, predict: Predict, split: str, batch_size: int) -> dict[str, float]:
        check_split(split)
        loss_sum, count = 0.0, 0
        accepted: list[bool] = []
        counting: list[bool] = []
        strict: list[bool] = []
        batches = next_step_batches(self.eval_strings[split], batch_size, shuffle=False, seed=0)
        for batch in batches:
            logits, _ = predict(batch, None)
            batch = batch.to(logits.device)  # the model may run elsewhere
            losses = self._item_losses(logits, batch)
            loss_sum, count = loss_sum + float(losses.sum()), count + losses.numel()
            weiss, decisive, clean = self.acceptance(logits.softmax(-1), batch)
            accepted += weiss.tolist()
            counting += (weiss & decisive).tolist()
            strict += (weiss & clean).tolist()
        if count == 0:
            raise TaskDataError(f"task counting: split {split!r} has no strings")
        metrics = {
            "loss": loss_sum / count,
            "generalisation_limit": float(leading_run(accepted)),
            "counting_limit": float(leading_run(counting)),
            "strict_limit": float(leading_run(strict)),
        }
        n_check = 2 * self.n_train
        if n_check in self.eval_ns[split]:
            metrics["accept_at_2x"] = float(counting[self.eval_ns[split].index(n_check)])
        return metrics

    def acceptance(
        self, probs: torch.Tensor, batch: Batch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per string: every actual next symbol above the threshold (Weiss's rule); every forced
        next symbol the most probable (forced: all steps but those after an "a", where "a" and
        "b" are both legal); and every illegal next symbol at or below the threshold."""
        padding = ~batch.mask
        actual = probs.gather(-1, batch.targets.unsqueeze(-1)).squeeze(-1)
        weiss = ((actual > self.threshold) | padding).all(dim=1)
        target = F.one_hot(batch.targets, len(self.vocabulary)).bool()
        a = self.vocabulary.index("a")  # "b" follows it
        free = batch.inputs == a
        others = probs.masked_fill(target, -1.0).amax(dim=-1)
        decisive = ((actual > others) | free | padding).all(dim=1)
        legal = target.clone()
        legal[..., a : a + 2] |= free.unsqueeze(-1)
        clean = ((probs <= self.threshold) | legal).all(dim=-1)
        return weiss, decisive, (clean | padding).all(dim=1)

    def _sizes(self) -> dict[str, int]:
        return {
            "train_sequences": len(self.train_strings),
            "train_n_max": self.n_train,
            "eval_n_max": self.eval_ns["test"][-1],
        }
