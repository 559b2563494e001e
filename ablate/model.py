"""The model a task gets: optional embedding, a GatedRNN, and a linear head the pattern implies."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ablate.cells import CellSpec, GatedRNN
from ablate.errors import AblateError
from ablate.tasks import Batch, Pattern, Task


@dataclass(frozen=True)
class ModelConfig:
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool | str = False  # "auto": wherever the task allows (Greff's protocol)
    dropout: float = 0.0
    input_noise: float = 0.0  # Greff: std of Gaussian noise added to the inputs in training
    init: str = "uniform"
    init_scale: float = 1.0
    forget_bias: float | None = None
    embedding_size: int | None = None  # token tasks; None: the vocabulary size (one-hot-like)
    backend: str = "auto"

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise AblateError(f"model.{name} must be a positive integer, got {value!r}")
        if self.bidirectional not in (True, False, "auto"):
            raise AblateError(
                f"model.bidirectional must be true, false or auto, got {self.bidirectional!r}"
            )
        if self.embedding_size is not None and self.embedding_size <= 0:
            raise AblateError(f"model.embedding_size must be positive, got {self.embedding_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise AblateError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.input_noise < 0:
            raise AblateError(f"model.input_noise must be >= 0, got {self.input_noise}")
        if self.init_scale <= 0:
            raise AblateError(f"model.init_scale must be > 0, got {self.init_scale}")


class SequenceModel(nn.Module):
    """Maps a task's batch to the logits its loss expects.

    Many-to-one tasks read the last layer's final state (each direction's, at the sequence's
    true end); framewise and next-step tasks read the output at every step.
    """

    def __init__(self, spec: CellSpec, task: Task, config: ModelConfig) -> None:
        super().__init__()
        bidirectional = (
            task.bidirectional_ok if config.bidirectional == "auto" else bool(config.bidirectional)
        )
        if bidirectional and not task.bidirectional_ok:
            raise AblateError(
                f"model.bidirectional=true: task {task.name!r} predicts the next step, so a "
                "reverse direction would see the answer"
            )
        self.pattern = task.pattern
        self.input_noise = config.input_noise
        self.embedding: nn.Embedding | None = None
        rnn_input = task.input_size
        if task.tokens:
            rnn_input = config.embedding_size or task.input_size
            self.embedding = nn.Embedding(task.input_size, rnn_input)
        self.rnn = GatedRNN(
            spec,
            rnn_input,
            config.hidden_size,
            num_layers=config.num_layers,
            bidirectional=bidirectional,
            dropout=config.dropout,
            batch_first=True,
            init=config.init,
            init_scale=config.init_scale,
            forget_bias=config.forget_bias,
            backend=config.backend,
        )
        self.head = nn.Linear(config.hidden_size * self.rnn.num_directions, task.output_size)

    def forward(self, batch: Batch, state: object | None = None) -> tuple[Tensor, object]:
        x = batch.inputs if self.embedding is None else self.embedding(batch.inputs)
        if self.training and self.input_noise > 0:
            x = x + self.input_noise * torch.randn_like(x)
        lengths = None if batch.carry_state else batch.lengths
        out, final = self.rnn(x, state, lengths)  # type: ignore[arg-type]
        if self.pattern is Pattern.MANY_TO_ONE:
            h = final[0] if isinstance(final, tuple) else final
            last = h[-self.rnn.num_directions :]  # the last layer's directions
            return self.head(torch.cat(list(last), dim=-1)), final
        return self.head(out), final


def detach_state(state: object) -> object:
    """Truncated BPTT: keep the values, cut the graph."""
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    assert isinstance(state, Tensor)
    return state.detach()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
