"""Loss and metrics on small cases computed by hand, and on real data with constant models
whose scores follow from the data alone."""

from __future__ import annotations

import math

import pytest
import torch

from ablate.tasks import Batch, Pattern


def _batch(inputs, targets, lengths, mask, carry=False) -> Batch:
    return Batch(inputs, targets, torch.tensor(lengths), torch.tensor(mask), carry)


def test_many_to_one_cross_entropy_by_hand(make_task):
    task = make_task("vowels")
    logits = torch.tensor([[0.0, math.log(3.0)] + [-1e4] * 7, [0.0] * 9])
    batch = _batch(torch.zeros(2, 1, 12), torch.tensor([1, 0]), [1, 1], [[True], [True]])
    # p(1) = 3/4 for the first, 1/9 for the second
    expected = (-math.log(3 / 4) + math.log(9)) / 2
    assert task.loss(logits, batch).item() == pytest.approx(expected, rel=1e-6)


def test_masked_cross_entropy_scores_only_the_mask(make_task):
    task = make_task("arith")
    vocab = task.output_size
    logits = torch.zeros(1, 3, vocab)
    logits[0, 0, 5] = 100.0  # confidently wrong, but unmasked
    logits[0, 2, 7] = math.log(vocab - 1.0)  # p(7) = (V-1) / (2V-2) = 1/2
    batch = _batch(
        torch.zeros(1, 3, dtype=torch.long), torch.tensor([[4, 7, 7]]), [3], [[False, True, True]]
    )
    expected = (math.log(vocab) + math.log(2)) / 2
    assert task.loss(logits, batch).item() == pytest.approx(expected, rel=1e-6)


def test_sigmoid_loss_sums_keys_and_averages_frames(make_task):
    task = make_task("jsb")
    logits = torch.zeros(1, 3, 88)
    logits[0, 1, :] = 2.0
    targets = torch.zeros(1, 3, 88)
    targets[0, 1, :3] = 1.0
    batch = _batch(torch.zeros(1, 3, 88), targets, [2], [[True, True, False]])
    frame0 = 88 * math.log(2)
    frame1 = 3 * math.log1p(math.exp(-2)) + 85 * math.log1p(math.exp(2))
    assert task.loss(logits, batch).item() == pytest.approx((frame0 + frame1) / 2, rel=1e-6)


def test_loss_without_scored_positions_is_zero_with_a_gradient(make_task):
    task = make_task("arith")
    logits = torch.zeros(1, 2, task.output_size, requires_grad=True)
    batch = _batch(
        torch.zeros(1, 2, dtype=torch.long),
        torch.zeros(1, 2, dtype=torch.long),
        [2],
        [[False, False]],
    )
    loss = task.loss(logits, batch)
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None


def _constant(task, logits_row: torch.Tensor):
    """A model that predicts the same logits everywhere."""

    def predict(batch, state):
        rows, steps = batch.mask.shape
        if task.pattern is Pattern.MANY_TO_ONE:
            return logits_row.expand(rows, -1), None
        return logits_row.expand(rows, steps, -1), state

    return predict


def _targets(task, split, batch_size=16):
    """Every scored target of the split, flattened."""
    parts = []
    for b in task.batches(split, batch_size, shuffle=False, seed=0):
        parts.append(b.targets if task.pattern is Pattern.MANY_TO_ONE else b.targets[b.mask])
    return torch.cat(parts)


@pytest.mark.parametrize("name", ["vowels", "digits", "framewise"])
def test_classification_error_of_a_constant_guess(make_task, name):
    task = make_task(name)
    logits = torch.zeros(task.output_size)
    logits[1] = 1.0
    metrics = task.evaluate(_constant(task, logits), "test", 16)
    targets = _targets(task, "test")
    accuracy = (targets == 1).double().mean().item()
    assert metrics["error"] == pytest.approx(1 - accuracy)
    assert metrics["accuracy"] == pytest.approx(accuracy)
    p1 = math.e / (math.e + task.output_size - 1)
    expected_loss = -(
        accuracy * math.log(p1) + (1 - accuracy) * math.log((1 - p1) / (task.output_size - 1))
    )
    assert metrics["loss"] == pytest.approx(expected_loss, rel=1e-5)


def test_uniform_model_scores(make_task):
    """Uniform predictions: bpc = log2 V, perplexity = V, jsb nll = 88 ln 2; accuracy is the
    share of targets equal to id 0 (argmax picks the first id)."""
    text, ptb, jsb = make_task("text"), make_task("ptb"), make_task("jsb")
    m = text.evaluate(_constant(text, torch.zeros(text.output_size)), "valid", 512)
    assert m["bpc"] == pytest.approx(math.log2(text.output_size), rel=1e-5)
    assert m["accuracy"] == pytest.approx(
        (_targets(text, "valid", 512) == 0).double().mean().item()
    )
    m = ptb.evaluate(_constant(ptb, torch.zeros(ptb.output_size)), "test", 4)
    assert m["perplexity"] == pytest.approx(ptb.output_size, rel=1e-5)
    m = jsb.evaluate(_constant(jsb, torch.zeros(88)), "test", 4)
    assert m["nll"] == pytest.approx(88 * math.log(2), rel=1e-5) and m["loss"] == m["nll"]


def test_evaluate_weights_batches_by_scored_items(make_task):
    """The split's loss is the mean over all scored items, not the mean of batch means."""
    task = make_task("digits")
    logits = torch.arange(10.0)
    by_batch = task.evaluate(_constant(task, logits), "valid", 7)["loss"]
    whole = task.evaluate(_constant(task, logits), "valid", 10_000)["loss"]
    assert by_batch == pytest.approx(whole, rel=1e-6)
