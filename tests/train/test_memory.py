"""The memory estimate that refuses a model too large to train, before it is built."""

from __future__ import annotations

import pytest
import torch

from ablate.cells import preset, preset_names
from ablate.cells.spec import SpecError
from ablate.errors import AblateError
from ablate.model import ModelConfig, SequenceModel, count_parameters
from ablate.tasks import build_task
from ablate.train.loop import TrainerConfig
from ablate.train.memory import check_fits, estimate, human, parameter_count
from ablate.train.optim import OptimConfig

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("cache"))
    small = {"train_examples": 50, "valid_examples": 20, "test_examples": 20}
    return {
        "digits": build_task({"name": "digits"}, seed=0, cache_dir=cache),
        "arith": build_task({"name": "arith", **small}, seed=0, cache_dir=cache),
    }


@pytest.mark.parametrize("cell", preset_names())
@pytest.mark.parametrize(
    "task,options",
    [
        ("digits", {"hidden_size": 8}),
        ("digits", {"hidden_size": 12, "num_layers": 2, "bidirectional": "auto"}),
        ("arith", {"hidden_size": 6, "num_layers": 3, "embedding_size": 5}),
        ("arith", {"hidden_size": 7}),
    ],
)
def test_the_parameter_count_is_the_built_models(tasks, cell, task, options):
    config = ModelConfig(**options)
    spec = preset(cell)
    if config.hidden_size % spec.heads:  # sLSTM's heads split the units: refused, one line
        with pytest.raises(SpecError, match="is not divisible by heads"):
            SequenceModel(spec, tasks[task], config)
        return
    model = SequenceModel(spec, tasks[task], config)
    assert parameter_count(spec, tasks[task], config) == count_parameters(model)


def test_the_estimate_covers_weights_gradients_and_optimiser_state(tasks):
    spec, task = preset("lstm"), tasks["digits"]
    config = ModelConfig(hidden_size=32)
    params = parameter_count(spec, task, config)
    trainer = TrainerConfig(batch_size=1, eval_batch_size=1)
    sgd = estimate(spec, task, config, OptimConfig(momentum=0.0, nesterov=False), trainer, 1, CPU)
    adam = estimate(spec, task, config, OptimConfig(name="adam"), trainer, 1, CPU)
    assert sgd.parameters == adam.parameters == params
    assert sgd.bytes >= 4 * 3 * params  # weights, gradients, best copy
    assert adam.bytes - sgd.bytes == 4 * 2 * params  # Adam's two moments


def test_a_model_that_cannot_fit_is_refused_naming_its_size_and_the_memory(tasks):
    with pytest.raises(AblateError) as err:
        check_fits(
            preset("vanilla"),
            tasks["digits"],
            ModelConfig(hidden_size=10**9),
            OptimConfig(),
            TrainerConfig(),
            CPU,
        )
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("model too large: cell vanilla with model.hidden_size=1000000000")
    assert "4,000,000,049,000,000,010 parameters and needs at least 55.5 EiB" in message
    assert " GiB of " in message  # the machine's memory
    fits = check_fits(
        preset("vanilla"), tasks["digits"], ModelConfig(), OptimConfig(), TrainerConfig(), CPU
    )
    assert fits.bytes < 2**30


def test_human_sizes():
    assert human(512) == "512 bytes"
    assert human(1536) == "1.5 KiB"
    assert human(2**70) == "1.0 ZiB"
    assert human(2**80) == "1024.0 ZiB"
