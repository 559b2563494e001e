"""torch's SGD and Adam stepping K trials' stacked parameters, each trial with its own
settings and state, and its own gradient-norm clipping."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ablate.stack.model import StackedModel
from ablate.stack.placement import put, take
from ablate.train.optim import OptimConfig, OptimizerName

_ADAM_EPS = 1e-8  # torch.optim.Adam's default, which ablate's optimiser uses


class StackedOptimizer:
    """The state of trial k lives at index k of each stacked buffer; :meth:`load` and
    :meth:`store` move it to and from the trial's own torch optimiser, whose state dict (a
    checkpoint) is then the one the trial would have alone."""

    def __init__(
        self,
        model: StackedModel,
        configs: Sequence[OptimConfig],
        optimizers: Sequence[torch.optim.Optimizer],
    ) -> None:
        self.model = model
        self.names = [name for name, _ in model.body.named_parameters()]
        self.params = [p for _, p in model.body.named_parameters()]
        self.configs = list(configs)
        self.adam = configs[0].name == OptimizerName.ADAM
        self.nesterov = configs[0].nesterov
        self.first = [torch.zeros_like(p) for p in self.params]  # momentum, or Adam's m
        self.second = [torch.zeros_like(p) for p in self.params] if self.adam else []
        self.steps = [0] * len(configs)
        self.lr = [0.0] * len(configs)
        for k, optimizer in enumerate(optimizers):
            self.load(k, optimizer)

    def _per_trial(self, values: Sequence[float], like: Tensor) -> Tensor:
        return torch.tensor(values, dtype=like.dtype, device=like.device).view(
            -1, *([1] * (like.dim() - 1))
        )

    def load(self, k: int, optimizer: torch.optim.Optimizer) -> None:
        """Trial k's state and learning rate from its own optimiser (fresh or resumed)."""
        own = list(optimizer.param_groups[0]["params"])
        for i, name in enumerate(self.names):
            state = optimizer.state.get(own[i], {})
            where = self.model.index[name][k]
            first = state.get("exp_avg" if self.adam else "momentum_buffer")
            if first is not None:
                put(self.first[i][k], first, where)
            if self.adam and "exp_avg_sq" in state:
                put(self.second[i][k], state["exp_avg_sq"], where)
            if self.adam and "step" in state:
                self.steps[k] = int(state["step"])
        self.refresh(k, optimizer)

    def refresh(self, k: int, optimizer: torch.optim.Optimizer) -> None:
        """Trial k's learning rate, which its schedule may have changed."""
        self.lr[k] = float(optimizer.param_groups[0]["lr"])

    def store(self, k: int, optimizer: torch.optim.Optimizer) -> None:
        """Trial k's state into its own optimiser, as its own steps would have left it."""
        own = list(optimizer.param_groups[0]["params"])
        config = self.configs[k]
        for i, name in enumerate(self.names):
            where = self.model.index[name][k]
            if self.adam:
                optimizer.state[own[i]] = {
                    "step": torch.tensor(float(self.steps[k])),
                    "exp_avg": take(self.first[i][k], where).clone(),
                    "exp_avg_sq": take(self.second[i][k], where).clone(),
                }
            elif config.momentum != 0:
                optimizer.state[own[i]] = {"momentum_buffer": take(self.first[i][k], where).clone()}

    def keep(self, trials: Sequence[int]) -> None:
        """Go on with the given trials only; call after :meth:`StackedModel.keep`."""
        chosen = torch.tensor(list(trials), dtype=torch.long)
        self.params = [p for _, p in self.model.body.named_parameters()]
        self.first = [b.index_select(0, chosen) for b in self.first]
        self.second = [b.index_select(0, chosen) for b in self.second]
        for name in ("configs", "steps", "lr"):
            setattr(self, name, [getattr(self, name)[k] for k in trials])

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def clip(self) -> None:
        """torch.nn.utils.clip_grad_norm_ per trial, over the trial's own gradients."""
        if all(c.clip_norm is None for c in self.configs):
            return
        grads = [p.grad for p in self.params if p.grad is not None]
        trials = len(self.configs)
        norms = torch.stack([torch.linalg.vector_norm(g.reshape(trials, -1), dim=1) for g in grads])
        total = torch.linalg.vector_norm(norms, dim=0)
        limit = [math.inf if c.clip_norm is None else c.clip_norm for c in self.configs]
        coef = (torch.tensor(limit, dtype=total.dtype) / (total + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(self._per_trial(coef.tolist(), g))

    @torch.no_grad()
    def step(self) -> None:
        self.steps = [s + 1 for s in self.steps]
        for i, p in enumerate(self.params):
            grad = p.grad
            if grad is None:
                continue
            decay = [c.weight_decay for c in self.configs]
            if any(decay):
                grad = grad + self._per_trial(decay, p) * p
            if self.adam:
                self._adam(i, p, grad)
            else:
                self._sgd(i, p, grad)

    def _sgd(self, i: int, p: nn.Parameter, grad: Tensor) -> None:
        # A fresh buffer is zero, so its first update is the gradient, as torch starts it.
        momentum = self._per_trial([c.momentum for c in self.configs], p)
        buf = self.first[i]
        buf.mul_(momentum).add_(grad)
        update = grad + momentum * buf if self.nesterov else buf
        p.sub_(self._per_trial(self.lr, p) * update)

    def _adam(self, i: int, p: nn.Parameter, grad: Tensor) -> None:
        beta1 = [c.betas[0] for c in self.configs]
        beta2 = [c.betas[1] for c in self.configs]
        m, v = self.first[i], self.second[i]
        m.lerp_(grad, self._per_trial([1 - b for b in beta1], p))
        v.mul_(self._per_trial(beta2, p))
        v.add_(self._per_trial([1 - b for b in beta2], p) * grad * grad)
        step_size = [lr / (1 - b**s) for lr, b, s in zip(self.lr, beta1, self.steps, strict=True)]
        root = [math.sqrt(1 - b**s) for b, s in zip(beta2, self.steps, strict=True)]
        denom = (v.sqrt() / self._per_trial(root, p)).add_(_ADAM_EPS)
        p.sub_(self._per_trial(step_size, p) * m / denom)
