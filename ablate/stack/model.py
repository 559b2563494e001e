"""K :class:`SequenceModel` s of one cell and task as one model with stacked parameters."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ablate.model import SequenceModel
from ablate.stack.batches import StackedBatch
from ablate.stack.placement import Index, placement, put, take
from ablate.tasks import Pattern


class StackedModel(nn.Module):
    """Parameters named as the models' own, each (K, *shape at the largest hidden size).

    Built from the trials' initialised models (so each starts exactly where it would alone);
    :meth:`write_back` copies a trial's current weights into its own model, whose evaluation,
    checkpoint and best weights then work as they do alone.
    """

    def __init__(self, models: Sequence[SequenceModel], rng: Sequence[Tensor]) -> None:
        super().__init__()
        sizes = [m.rnn.hidden_size for m in models]
        self.body = copy.deepcopy(models[sizes.index(max(sizes))])
        self.body.rnn.trials = len(models)
        self.noise = [m.input_noise for m in models]
        # Each trial's random state: the input noise is drawn from it as it would be alone.
        self.rng = list(rng)
        self.index: dict[str, list[Index]] = {}
        self.masks: dict[str, Tensor] = {}
        for name, param in list(self.body.named_parameters()):
            stacked = param.detach().new_zeros((len(models), *param.shape))
            self.index[name] = []
            for k, model in enumerate(models):
                own = model.get_parameter(name)
                where = placement(own.shape, param.shape, sizes[k], max(sizes), name)
                put(stacked[k], own.detach(), where)
                self.index[name].append(where)
            if any(where is not None for where in self.index[name]):
                mask = torch.zeros_like(stacked)
                for k, where in enumerate(self.index[name]):
                    put(mask[k], mask.new_ones(models[k].get_parameter(name).shape), where)
                self.masks[name] = mask
            module_name, _, leaf = name.rpartition(".")
            setattr(self.body.get_submodule(module_name), leaf, nn.Parameter(stacked))

    @property
    def trials(self) -> int:
        return self.body.rnn.trials

    def write_back(self, k: int, model: SequenceModel) -> None:
        """Trial k's current weights into its own model."""
        with torch.no_grad():
            for name, param in self.body.named_parameters():
                model.get_parameter(name).copy_(take(param[k], self.index[name][k]))

    def mask_gradients(self) -> None:
        """Padded units get no gradient, so their weights stay exactly zero."""
        for name, mask in self.masks.items():
            grad = self.body.get_parameter(name).grad
            if grad is not None:
                grad.mul_(mask)

    def keep(self, trials: Sequence[int]) -> None:
        """Go on with the given trials only (in this order)."""
        chosen = torch.tensor(list(trials), dtype=torch.long)
        for name, param in list(self.body.named_parameters()):
            # A new parameter: autograd keeps the shape a parameter had when it first got a
            # gradient, so resizing one in place would break the next backward.
            kept = nn.Parameter(param.detach().index_select(0, chosen))
            if param.grad is not None:
                kept.grad = param.grad.index_select(0, chosen)
            module_name, _, leaf = name.rpartition(".")
            setattr(self.body.get_submodule(module_name), leaf, kept)
            self.index[name] = [self.index[name][k] for k in trials]
            if name in self.masks:
                self.masks[name] = self.masks[name].index_select(0, chosen)
        self.noise = [self.noise[k] for k in trials]
        self.rng = [self.rng[k] for k in trials]
        self.body.rnn.trials = len(trials)

    def forward(self, stacked: StackedBatch, state: object | None = None) -> tuple[Tensor, object]:
        body, batch, k = self.body, stacked.batch, self.trials
        x = batch.inputs
        if body.embedding is not None:
            weight = body.embedding.weight  # (K, V, E)
            vocabulary = weight.shape[1]
            offsets = torch.arange(k, device=x.device).repeat_interleave(stacked.rows)
            x = F.embedding(x + offsets.unsqueeze(1) * vocabulary, weight.flatten(0, 1))
        if self.training and any(s > 0 for s in self.noise):
            x = x + self._noise(x, stacked)
        lengths = batch.lengths if not batch.carry_state or stacked.ragged else None
        out, final = body.rnn(x, state, lengths)
        weight, bias = body.head.weight, body.head.bias  # (K, O, F), (K, O)
        if body.pattern is Pattern.MANY_TO_ONE:
            h = final[0] if isinstance(final, tuple) else final
            features = torch.cat(list(h[-body.rnn.num_directions :]), dim=-1)
        else:
            features = out
        flat = features.reshape(k, -1, features.shape[-1])
        logits = torch.baddbmm(bias.unsqueeze(1), flat, weight.transpose(1, 2))
        return logits.view(*features.shape[:-1], -1), final

    def _noise(self, x: Tensor, stacked: StackedBatch) -> Tensor:
        """Each trial's Gaussian input noise, drawn from its own random state over its own
        steps, as ``SequenceModel`` draws it alone."""
        noise = torch.zeros_like(x)
        rows = stacked.rows
        for k, (std, steps) in enumerate(zip(self.noise, stacked.steps, strict=True)):
            if std > 0:
                torch.set_rng_state(self.rng[k])
                part = x[k * rows : (k + 1) * rows, :steps]
                noise[k * rows : (k + 1) * rows, :steps] = std * torch.randn_like(part)
                self.rng[k] = torch.get_rng_state()
        return noise
