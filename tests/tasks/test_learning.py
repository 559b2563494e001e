"""A tiny model learns real tasks in a few seconds: inputs, targets and masks line up."""

from __future__ import annotations

import pytest
import torch

from tests.tasks.helpers import TinyModel


def _train(task, epochs: int, batch_size: int) -> TinyModel:
    torch.manual_seed(0)
    model = TinyModel(task, hidden=32)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(epochs):
        state = None
        for batch in task.batches("train", batch_size, shuffle=True, seed=epoch):
            logits, state = model(batch, state if batch.carry_state else None)
            state = state.detach()
            loss = task.loss(logits, batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model


@pytest.mark.parametrize(
    ("name", "options", "epochs", "metric", "better_than"),
    [
        ("digits", {}, 1, "error", 0.5),
        ("vowels", {}, 5, "error", 0.3),
        ("arith", {"max_digits": 2, "train_examples": 1000}, 3, "accuracy", 0.3),
        ("jsb", {}, 10, "nll", 20.0),
    ],
)
def test_a_tiny_model_learns(make_task, name, options, epochs, metric, better_than):
    task = make_task(name, **options)
    model = _train(task, epochs, 16)
    with torch.no_grad():
        score = task.evaluate(model, "valid", 32)[metric]
    assert score > better_than if task.higher_is_better else score < better_than
