"""Every task against the interface: sizes, batch shapes and dtypes, determinism, evaluate."""

from __future__ import annotations

import math

import pytest
import torch

from ablate.tasks import TASKS, Head, Pattern, build_task
from ablate.tasks.base import SPLITS
from tests.tasks.helpers import SMALL

ALL = sorted(TASKS)


def test_every_task_has_small_options():
    assert set(SMALL) == set(TASKS)


@pytest.mark.parametrize("name", ALL)
def test_attributes_and_describe(make_task, name):
    task = make_task(name)
    assert task.name == name
    assert task.input_size > 0 and task.output_size > 0
    assert task.bidirectional_ok == (task.pattern is not Pattern.NEXT_STEP)
    info = task.describe()
    assert info["task"] == name and info["input_size"] == task.input_size
    assert all(isinstance(v, str | int | float | bool) for v in info.values())
    worst = task.worst_value()
    assert worst == (0.0 if task.higher_is_better else (1.0 if task.metric == "error" else 1e9))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("split", SPLITS)
def test_batch_shapes(make_task, name, split):
    task = make_task(name)
    batches = list(task.batches(split, 8, shuffle=True, seed=3))
    assert batches
    for b in batches:
        rows, steps = b.mask.shape
        assert b.mask.dtype == torch.bool
        assert b.lengths.shape == (rows,) and b.lengths.dtype == torch.int64
        assert int(b.lengths.max()) == steps and int(b.lengths.min()) >= 1
        if task.tokens:
            assert b.inputs.shape == (rows, steps) and b.inputs.dtype == torch.int64
            assert int(b.inputs.min()) >= 0 and int(b.inputs.max()) < task.input_size
        else:
            assert b.inputs.shape == (rows, steps, task.input_size)
            assert b.inputs.dtype == torch.float32
        if task.pattern is Pattern.MANY_TO_ONE:
            assert b.targets.shape == (rows,) and b.targets.dtype == torch.int64
        elif task.head is Head.SIGMOID:
            assert b.targets.shape == (rows, steps, task.output_size)
            assert b.targets.dtype == torch.float32
        else:
            assert b.targets.shape == (rows, steps) and b.targets.dtype == torch.int64
            assert int(b.targets.max()) < task.output_size
        if b.carry_state:  # truncated BPTT: every row is a full window
            assert bool((b.lengths == steps).all())
        else:  # padding: the mask is exactly the valid frames
            valid = torch.arange(steps)[None, :] < b.lengths[:, None]
            assert torch.equal(b.mask, valid)
        assert b.mask.any()


@pytest.mark.parametrize("name", ALL)
def test_batches_deterministic_and_shuffled_by_seed(make_task, name):
    task = make_task(name)

    def first(seed: int, shuffle: bool = True):
        return next(iter(task.batches("train", 8, shuffle=shuffle, seed=seed)))

    a, b, c = first(1), first(1), first(2)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not (a.inputs.shape == c.inputs.shape and torch.equal(a.inputs, c.inputs))
    assert torch.equal(first(1, shuffle=False).inputs, first(2, shuffle=False).inputs)


@pytest.mark.parametrize("name", ["jsb", "vowels", "digits", "arith", "xml", "text"])
def test_data_fixed_by_data_seed(make_task, cache_dir, name):
    """The same data_seed rebuilds identical data whatever the run seed; another changes it."""
    same = make_task(name, data_seed=0)
    rebuilt = build_task(
        {"name": name, **SMALL[name], "data_seed": 0}, seed=5, cache_dir=str(cache_dir)
    )
    other = make_task(name, data_seed=1)

    def valid(task):
        return torch.cat(
            [b.inputs.flatten() for b in task.batches("valid", 64, shuffle=False, seed=0)]
        )

    assert torch.equal(valid(same), valid(rebuilt))
    x, y = valid(same), valid(other)
    assert x.shape != y.shape or not torch.equal(x, y)


def test_null_data_seed_takes_the_run_seed():
    def build(seed):
        task = build_task({"name": "digits", "data_seed": None}, seed=seed)
        return task.labels["test"]

    assert (build(3) == build(3)).all()
    assert not (build(3) == build(4)).all()


@pytest.mark.parametrize("name", ALL)
def test_evaluate_returns_every_metric(make_task, tiny_model, name):
    task = make_task(name)
    model = tiny_model(task)
    calls = []

    def predict(batch, state):
        calls.append(state is None)
        return model(batch, state)

    batch_size = 512 if name == "text" else 8  # text: 0.5 M characters of validation
    with torch.no_grad():
        metrics = task.evaluate(predict, "valid", batch_size)
    assert task.metric in metrics and "loss" in metrics
    assert all(math.isfinite(v) for v in metrics.values())
    batches = list(task.batches("valid", batch_size, shuffle=False, seed=0))
    assert len(calls) == len(batches)
    # state starts empty, and is carried only through truncated-BPTT windows
    expected = [True] + [not b.carry_state for b in batches[1:]]
    assert calls == expected


@pytest.mark.parametrize("name", ALL)
def test_loss_is_differentiable_scalar(make_task, tiny_model, name):
    task = make_task(name)
    model = tiny_model(task)
    batch = next(iter(task.batches("train", 4, shuffle=True, seed=0)))
    logits, _ = model(batch, None)
    loss = task.loss(logits, batch)
    assert loss.shape == () and math.isfinite(loss.item())
    loss.backward()
    assert model.head.weight.grad is not None


def test_batch_to_keeps_lengths_on_cpu(make_task):
    batch = next(iter(make_task("vowels").batches("train", 4, shuffle=False, seed=0)))
    moved = batch.to("meta")
    assert moved.inputs.device.type == "meta" and moved.mask.device.type == "meta"
    assert moved.lengths.device.type == "cpu"
