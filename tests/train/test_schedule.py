"""The schedule: when the rate is halved and training stops, and what it watches."""

from __future__ import annotations

import pytest
import torch

from ablate.cells import preset
from ablate.model import ModelConfig, SequenceModel
from ablate.tasks import build_task
from ablate.train.loop import EpochRecord, Trainer, TrainerConfig, schedule_improved
from ablate.train.optim import OptimConfig, Schedule

CPU = torch.device("cpu")


def _rates_until_stop(schedule: Schedule, improved: list[bool]) -> tuple[list[float], int]:
    """The rate each epoch trained at, and the epoch after which the schedule stopped."""
    rates = []
    for epoch, better in enumerate(improved, start=1):
        rates.append(schedule.optimizer.param_groups[0]["lr"])
        if schedule.after_epoch(better):
            return rates, epoch
    raise AssertionError("the schedule never stopped")


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)


def test_jozefowicz_halves_after_patience_bad_epochs_then_stops_after_its_decay_epochs():
    # improvements at epochs 1-2, then none: 3 bad epochs (3-5) start the decay, the rate is
    # halved before each of 4 more epochs (6-9), then training stops; a late improvement
    # during the decay changes nothing.
    flags = [True, True, False, False, False, False, True, False, False, False, False]
    rates, stopped = _rates_until_stop(Schedule(_optimizer(), 3, 4, 0.5), flags)
    assert rates == [1.0] * 5 + [0.5, 0.25, 0.125, 0.0625]
    assert stopped == 9


def test_an_improvement_resets_the_count_of_bad_epochs():
    flags = [True, False, False, True, False, False, True] + [False] * 10
    rates, stopped = _rates_until_stop(Schedule(_optimizer(), 3, 4, 0.5), flags)
    assert rates[:10] == [1.0] * 10 and stopped == 14


def test_plateau_stops_after_patience_bad_epochs_at_a_fixed_rate():
    rates, stopped = _rates_until_stop(
        Schedule(_optimizer(), 2, 0, 0.5), [True, False] * 3 + [False]
    )
    assert rates == [1.0] * 7 and stopped == 7


def _record(epoch: int, loss: float, accuracy: float) -> EpochRecord:
    return EpochRecord(epoch, 1.0, {"loss": loss, "accuracy": accuracy}, 0.0, 1.0)


def test_watching_the_loss_sees_learning_that_a_flat_accuracy_hides():
    history = [_record(1, 3.0, 0.25), _record(2, 2.9, 0.25)]
    assert schedule_improved("loss", history, improved=False)
    assert not schedule_improved("metric", history, improved=False)
    # the loss must beat every earlier epoch's, not just the last one's
    worse = [_record(1, 2.0, 0.25), _record(2, 2.5, 0.25), _record(3, 2.2, 0.3)]
    assert not schedule_improved("loss", worse, improved=True)
    assert schedule_improved("metric", worse, improved=True)
    assert schedule_improved("loss", history[:1], improved=True)  # the first epoch
    nan = [_record(1, 3.0, 0.25), _record(2, float("nan"), 0.25)]
    assert not schedule_improved("loss", nan, improved=False)


def test_an_unknown_monitor_is_refused_in_one_line():
    with pytest.raises(Exception, match="^trainer.monitor must be one of metric, loss, got 'los'$"):
        TrainerConfig(monitor="los")


@pytest.fixture(scope="module")
def arith(tmp_path_factory):
    sizes = {"train_examples": 300, "valid_examples": 100, "test_examples": 50}
    options = {"name": "arith", "fresh_train": False, **sizes}
    return build_task(options, seed=0, cache_dir=str(tmp_path_factory.mktemp("cache")))


def _fit(task, monitor: str) -> list[EpochRecord]:
    torch.manual_seed(0)
    model = SequenceModel(preset("lstm"), task, ModelConfig(hidden_size=16))
    optim = OptimConfig(
        lr=0.05, momentum=0.0, nesterov=False, schedule="jozefowicz", decay_epochs=1
    )
    config = TrainerConfig(
        max_epochs=10, patience=2, batch_size=20, monitor=monitor, checkpoint=False, progress=False
    )
    trainer = Trainer(
        model, task, optim, config, seed=0, device=CPU, checkpoint_path=None, fingerprint="x"
    )
    return trainer.fit().history


def test_on_arith_a_small_lstm_at_a_low_rate_is_stopped_on_the_plateau_unless_the_loss_is_watched(
    arith,
):
    # Answer accuracy sits at the first level it reaches while the loss falls every epoch:
    # watching the accuracy, the schedule halves the rate and stops; watching the loss, the
    # run goes on to max_epochs at its rate. Both train the same until the first decision
    # differs.
    by_metric, by_loss = _fit(arith, "metric"), _fit(arith, "loss")
    assert len(by_metric) < 10 and by_metric[-1].lr < by_metric[0].lr
    assert len(by_loss) == 10 and {r.lr for r in by_loss} == {0.05}
    losses = [r.valid["loss"] for r in by_loss]
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))
    first_halved = next(i for i, r in enumerate(by_metric) if r.lr < 0.05)
    for a, b in zip(by_metric[:first_halved], by_loss, strict=False):
        assert a.valid == b.valid and a.train_loss == b.train_loss
