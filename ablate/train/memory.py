"""How much memory training a model takes, estimated from the cell spec and the task before
the model is built: a model that cannot fit is refused in one line naming its size and the
machine's memory, instead of failing in torch's allocator (or the kernel's OOM killer).

The estimate is a lower bound (float32 weights, their gradients, the optimiser's state, the
best-weights copy, and the activations one training batch keeps for backpropagation), so a
model that is refused could not have trained here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil
import torch

from ablate.cells import CellSpec, layout
from ablate.errors import AblateError
from ablate.model import ModelConfig
from ablate.tasks import Pattern, Task
from ablate.train.loop import TrainerConfig
from ablate.train.optim import OptimConfig, OptimizerName

FLOAT_BYTES = 4  # the model trains in float32

# cgroup limits (v2, v1): a container may have far less than the machine it runs on.
_CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)


@dataclass(frozen=True)
class Estimate:
    parameters: int
    bytes: int


def _directions(task: Task, config: ModelConfig) -> int:
    auto = config.bidirectional == "auto"
    return 2 if (task.bidirectional_ok if auto else bool(config.bidirectional)) else 1


def parameter_count(spec: CellSpec, task: Task, config: ModelConfig) -> int:
    """The parameters :class:`ablate.model.SequenceModel` will have: embedding, every layer
    and direction of the cell (from its layout), the linear head."""
    directions = _directions(task, config)
    hidden = config.hidden_size
    total = 0
    rnn_input = task.input_size
    if task.tokens:
        rnn_input = config.embedding_size or task.input_size
        total += task.input_size * rnn_input
    for number in range(config.num_layers):
        layer_input = rnn_input if number == 0 else hidden * directions
        total += directions * layout(spec, layer_input, hidden).num_parameters()
    total += (hidden * directions + 1) * task.output_size
    return total


def estimate(
    spec: CellSpec,
    task: Task,
    config: ModelConfig,
    optim: OptimConfig,
    trainer: TrainerConfig,
    steps: int,
    device: torch.device,
) -> Estimate:
    """At least what training on ``device`` takes: weights, gradients, optimiser state (and,
    on the CPU, the best-weights copy) per parameter; and the larger of a training batch's
    saved activations (each layer-direction's pre-activations and states at every one of
    ``steps`` steps, the head's outputs) and an evaluation batch's (one layer at a time)."""
    parameters = parameter_count(spec, task, config)
    momentum = 1 if optim.momentum > 0 else 0
    state = 2 if optim.name == OptimizerName.ADAM else momentum  # Adam: exp_avg, exp_avg_sq
    copies = 2 + state + (device.type == "cpu")  # weights, gradients, state, best copy
    directions = _directions(task, config)
    rows = len(layout(spec, config.hidden_size, config.hidden_size).bias_rows)
    width = directions * config.hidden_size * (rows + 2)  # per layer, step and sequence
    outputs = task.output_size * (1 if task.pattern is Pattern.MANY_TO_ONE else steps)
    training = trainer.batch_size * (config.num_layers * steps * width + 2 * outputs)
    evaluation = trainer.eval_batch_size * (steps * width + outputs)
    return Estimate(parameters, FLOAT_BYTES * (parameters * copies + max(training, evaluation)))


def machine_memory(device: torch.device) -> tuple[int, str]:
    """The memory a job on ``device`` can use at most, and what it is."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return int(props.total_memory), f"{device} ({props.name})"
    total = int(psutil.virtual_memory().total)
    for path in _CGROUP_LIMITS:
        try:
            limit = int(path.read_text().strip())
        except (OSError, ValueError):  # absent, or "max"
            continue
        if 0 < limit < total:
            return limit, "this container's memory limit"
    return total, "this machine's RAM"


def human(size: float) -> str:
    """Bytes in binary units: 7.8 GiB."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB"):
        if size < 1024 or unit == "ZiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def check_fits(
    spec: CellSpec,
    task: Task,
    config: ModelConfig,
    optim: OptimConfig,
    trainer: TrainerConfig,
    device: torch.device,
) -> Estimate:
    """Refuse a model whose training cannot fit in the device's memory. The steps per batch
    are those of the first training batch (the task must already have accepted the batch
    sizes: :meth:`ablate.tasks.Task.check_batch_sizes`)."""
    first = next(iter(task.batches("train", trainer.batch_size, shuffle=False, seed=0)), None)
    steps = 1 if first is None else max(1, int(first.inputs.shape[1]))
    need = estimate(spec, task, config, optim, trainer, steps, device)
    have, where = machine_memory(device)
    if need.bytes > have:
        raise AblateError(
            f"model too large: cell {spec.name} with model.hidden_size={config.hidden_size}, "
            f"model.num_layers={config.num_layers} on task {task.name} has "
            f"{need.parameters:,} parameters and needs at least {human(need.bytes)} to train, "
            f"more than the {human(have)} of {where}"
        )
    return need
