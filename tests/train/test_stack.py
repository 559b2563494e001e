"""Trials trained as one stacked model compute what each computes alone.

Each trial is prepared exactly as ``ablate train`` prepares it (the shipped configs, its seed,
its own task and model); the same trial is trained once alone (``Trainer.fit``) and once in a
group (``train_group``). In float64 every epoch's training loss (the mean of its steps'
losses), every validation metric and the trained weights agree to 1e-6 relative, for groups
mixing hidden sizes, learning rates, momenta, input noise and seeds, with a member that
diverges and one that stops early, in every cell family and every task pattern.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from ablate.stack import GroupMember, can_stack, train_group
from ablate.train.app import Job, prepare
from ablate.train.loop import Diverged, TrainResult
from tests.tasks.helpers import SMALL, write_framewise
from tests.train.test_every_task import compose_job

# (task, cell, overrides shared by the group): every family (LSTM with peepholes, FGR, GRU,
# Elman, MUT), every pattern (many-to-one, framewise, next-step, truncated BPTT), SGD with
# and without Nesterov momentum, clipping, Adam.
CASES = {
    # Each trial's own split of the data (data_seed null: its seed's).
    "lstm-many-to-one": ("digits", "vanilla", ["experiment=greff2017", "task.data_seed=null"]),
    "fgr-ragged": ("vowels", "fgr", ["experiment=greff2017"]),
    "gru-next-step": ("jsb", "gru", ["experiment=jozefowicz2015"]),
    "elman-tbptt": ("text", "tanh", ["optim.clip_norm=1.0", "optim.nesterov=false"]),
    "mut1-tokens": ("arith", "mut1", ["experiment=jozefowicz2015"]),
    "cifg-framewise": ("framewise", "cifg", ["optim=adam"]),
}

# Per-trial settings: hidden sizes, seeds, learning rates, momenta and noise all differ.
TRIALS = [
    {
        "seed": 11,
        "model.hidden_size": 12,
        "optim.lr": 3e-3,
        "optim.momentum": 0.9,
        "model.input_noise": 0.0,
    },
    {
        "seed": 12,
        "model.hidden_size": 16,
        "optim.lr": 1e-3,
        "optim.momentum": 0.5,
        "model.input_noise": 0.3,
    },
    {
        "seed": 13,
        "model.hidden_size": 9,
        "optim.lr": 1e-2,
        "optim.momentum": 0.2,
        "model.input_noise": 0.1,
    },
]


def _job(tmp_path: Path, name: str, overrides: list[str]) -> Job:
    cfg = compose_job(overrides, tmp_path / name, tmp_path)
    return prepare(cfg)


def _overrides(
    task: str, cell: str, shared: list[str], trial: dict, tmp_path: Path, **settings: object
) -> list[str]:
    """``ablate train`` overrides: the shared ones, then small data and short training, then
    the trial's own settings and ``settings`` (later ones win)."""
    options = dict(SMALL[task])
    if task == "framewise":
        options["data_dir"] = str(write_framewise(tmp_path / "frames"))
    if task == "jsb":
        options["max_chorales"] = 24
    values: dict[str, object] = {
        "task": task,
        "cell": cell,
        "trainer.max_epochs": 3,
        "trainer.max_batches": 5,
        "trainer.batch_size": 8,
        "trainer.eval_batch_size": 16,
        "trainer.checkpoint": "false",
        "threads": 1,
        "tracking.root": tmp_path,
        **{f"task.{k}": v for k, v in options.items()},
        **trial,
        **{k.replace("__", "."): v for k, v in settings.items()},
    }
    return [*shared, *(f"{k}={v}" for k, v in values.items())]


def _in_float64(job: Job) -> Job:
    """The job's model and its task's batches in float64 (the real data, cast)."""
    job.model.double()
    batches = job.task.batches

    def cast(*args, **kwargs):
        for batch in batches(*args, **kwargs):
            yield dataclasses.replace(
                batch,
                inputs=batch.inputs.double() if batch.inputs.is_floating_point() else batch.inputs,
                targets=(
                    batch.targets.double() if batch.targets.is_floating_point() else batch.targets
                ),
            )

    job.task.batches = cast  # type: ignore[method-assign]
    return job


def _alone(job: Job) -> TrainResult | BaseException:
    torch.set_rng_state(job.trainer.initial_rng)
    try:
        return job.trainer.fit()
    except Diverged as err:
        return err


def _close(a: float, b: float, rel: float) -> bool:
    return a == b or abs(a - b) <= rel * max(abs(a), abs(b))


def _assert_same(alone: TrainResult, grouped: TrainResult, rel: float) -> None:
    assert len(alone.history) == len(grouped.history)
    for a, b in zip(alone.history, grouped.history, strict=True):
        assert _close(a.train_loss, b.train_loss, rel), (a.epoch, a.train_loss, b.train_loss)
        for key, value in a.valid.items():
            assert _close(value, b.valid[key], rel), (a.epoch, key, value, b.valid[key])
    assert alone.best_epoch == grouped.best_epoch
    for key, value in alone.test.items():
        assert _close(value, grouped.test[key], rel), (key, value, grouped.test[key])


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_trial_in_a_group_computes_what_it_computes_alone(case, tmp_path):
    task, cell, shared = CASES[case]
    trials = [dict(t) for t in TRIALS]
    if cell == "mut1":  # MUT1 adds raw x to its units: its groups hold one hidden size
        for t in trials:
            t["model.hidden_size"] = 12
    if "optim=adam" in shared:
        for t in trials:
            t.pop("optim.momentum")
    alone_jobs, grouped_jobs = [], []
    for k, trial in enumerate(trials):
        overrides = _overrides(task, cell, shared, trial, tmp_path)
        alone_jobs.append(_in_float64(_job(tmp_path, f"alone{k}", overrides)))
        grouped_jobs.append(_in_float64(_job(tmp_path, f"group{k}", overrides)))
    alone = [_alone(j) for j in alone_jobs]
    assert can_stack([j.trainer for j in grouped_jobs]) is None
    grouped = train_group([GroupMember(j.trainer) for j in grouped_jobs])
    for a, g, a_job, g_job in zip(alone, grouped, alone_jobs, grouped_jobs, strict=True):
        assert isinstance(a, TrainResult) and isinstance(g, TrainResult)
        _assert_same(a, g, 1e-6)
        # The best epoch's weights, back in each trial's own model.
        for name, value in a_job.model.state_dict().items():
            torch.testing.assert_close(g_job.model.state_dict()[name], value, rtol=1e-6, atol=1e-9)


def test_a_diverging_and_an_early_stopping_member_leave_the_others_exact(tmp_path):
    """One trial's loss becomes NaN in epoch 1 and one stops after two epochs without
    improvement; each ends as it ends alone, and the others train on unchanged."""
    trials = [
        *TRIALS[:2],
        # Diverges: a step size no SGD survives.
        {"seed": 21, "model.hidden_size": 14, "optim.lr": 1e307, "optim.momentum": 0.9},
        # Stops early: a learning rate too small to change the validation error.
        {
            "seed": 22,
            "model.hidden_size": 10,
            "optim.lr": 1e-12,
            "optim.momentum": 0.1,
            "trainer.patience": 1,
            "trainer.max_epochs": 6,
        },
    ]
    shared = ["experiment=greff2017"]
    alone, jobs = [], []
    for k, trial in enumerate(trials):
        overrides = _overrides("digits", "nog", shared, trial, tmp_path)
        alone.append(_alone(_in_float64(_job(tmp_path, f"alone{k}", overrides))))
        jobs.append(_in_float64(_job(tmp_path, f"group{k}", overrides)))
    grouped = train_group([GroupMember(j.trainer) for j in jobs])
    assert isinstance(alone[2], Diverged) and isinstance(grouped[2], Diverged)
    assert str(alone[2]) == str(grouped[2])
    stopped = grouped[3]
    assert isinstance(stopped, TrainResult) and len(stopped.history) < 6
    for a, g in zip(alone[:2] + alone[3:], grouped[:2] + grouped[3:], strict=True):
        assert isinstance(a, TrainResult) and isinstance(g, TrainResult)
        _assert_same(a, g, 1e-6)


def test_first_epoch_metrics_agree_in_float32(tmp_path):
    alone, jobs = [], []
    for k, trial in enumerate(TRIALS):
        overrides = _overrides(
            "digits",
            "vanilla",
            ["experiment=greff2017"],
            trial,
            tmp_path,
            trainer__max_epochs=1,
            trainer__max_batches="null",
        )
        alone.append(_alone(_job(tmp_path, f"alone{k}", overrides)))
        jobs.append(_job(tmp_path, f"group{k}", overrides))
    grouped = train_group([GroupMember(j.trainer) for j in jobs])
    for a, g in zip(alone, grouped, strict=True):
        assert isinstance(a, TrainResult) and isinstance(g, TrainResult)
        _assert_same(a, g, 1e-5)


def test_padded_units_stay_exactly_zero(tmp_path):
    """The smaller trials' padded weights and their gradients are zero after training: the
    group's stacked parameters hold each trial's own weights and nothing else."""
    from ablate.stack.model import StackedModel

    jobs = [
        _job(tmp_path, f"t{k}", _overrides("vowels", "fgr", ["experiment=greff2017"], t, tmp_path))
        for k, t in enumerate(TRIALS)
    ]
    trainers = [j.trainer for j in jobs]
    model = StackedModel([t.model for t in trainers], [t.initial_rng for t in trainers])
    assert model.masks, "the trials' hidden sizes differ: some parameters are padded"
    batch = next(iter(jobs[0].task.batches("train", 8, shuffle=True, seed=0)))
    from ablate.stack.batches import stack_batches, trial_losses

    stacked = stack_batches([batch] * len(jobs))
    logits, _ = model(stacked)
    means, _ = trial_losses(jobs[0].task, logits, stacked)
    means.sum().backward()
    model.mask_gradients()
    for name, mask in model.masks.items():
        param = model.body.get_parameter(name)
        assert torch.count_nonzero(param.grad * (1 - mask)) == 0, name
        assert torch.count_nonzero(param.detach() * (1 - mask)) == 0, name
    assert all(math.isfinite(v) for v in means.tolist())


def test_a_group_checkpoint_resumes_alone(tmp_path):
    """A group stopped in its second epoch's reports (Ctrl-C) leaves each trial the checkpoint
    of its last closed epoch (the second for the trial reported before the stop, the first
    for the others), which the trial alone continues from, to the numbers of an uninterrupted
    run."""
    overrides = [
        _overrides(
            "digits", "cifg", ["experiment=greff2017"], t, tmp_path, trainer__checkpoint="true"
        )
        for t in TRIALS
    ]
    jobs = [_job(tmp_path, f"job{k}", o) for k, o in enumerate(overrides)]

    def stop_after_two(record):
        if record.epoch == 2:
            raise KeyboardInterrupt

    members = [GroupMember(j.trainer) for j in jobs]
    members[1].on_epoch = stop_after_two
    with pytest.raises(KeyboardInterrupt):
        train_group(members)
    for k, o in enumerate(overrides):
        resumed = _job(tmp_path, f"job{k}", o)  # the same folder: its checkpoint
        checkpoint = resumed.trainer.resume_point()
        assert checkpoint is not None and checkpoint.epoch == (2 if k == 0 else 1)
        result = resumed.trainer.fit(resume=checkpoint)
        straight = _job(tmp_path, f"straight{k}", o)
        expected = _alone(straight)
        assert isinstance(expected, TrainResult)
        _assert_same(expected, result, 1e-5)


def test_the_slstm_trains_alone_even_with_a_kernel(tmp_path):
    """Its units are split among heads: padding a group to its largest hidden size would move
    them, so a batched launch trains sLSTM trials one by one."""
    overrides = ["experiment=jozefowicz2015", "cell=slstm", "task=arith", "threads=1"]
    jobs = [_job(tmp_path, f"s{k}", [*overrides, f"model.hidden_size={n}", "tracking.root=."])
            for k, n in enumerate((8, 12))]  # fmt: skip
    assert can_stack([j.trainer for j in jobs]) == (
        "the sLSTM's heads split its units: padded hidden sizes would move them"
    )
