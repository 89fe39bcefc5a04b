"""Classical optimizers on the family's known predictor, fed the same mini-batches as every learner.

One optimizer step per mini-batch on the mean loss of that mini-batch, per task. The updates are
written out (rather than calling ``torch.optim``) so that the optimizer's moments live in the
learner's state, vectorized over tasks; ``tests/test_classical.py`` checks them against
``torch.optim.SGD`` and ``torch.optim.Adam`` on the same data, parameter for parameter.
"""

from __future__ import annotations

import torch
from torch import Tensor

from iai.core.predictors import MLPPredictor, sample_theta
from iai.core.tasks import TaskFamily
from iai.utils import ConfigError, generator
from iai.core.learners.base import State

OPTIMIZERS = ("sgd", "adam")


class GradientLearner:
    """SGD (with optional momentum) or Adam on f(x, theta), from theta = 0 (or a small random draw
    for an MLP, whose zero point is a saddle)."""

    regime = "classical"
    signal = "none"

    def __init__(self, family: TaskFamily, optimizer: str = "adam", lr: float = 1e-2,
                 momentum: float = 0.0, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 init_std: float = 0.1, seed: int = 0, name: str | None = None):
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer: unknown {optimizer!r}; expected one of {list(OPTIMIZERS)}")
        if not lr > 0:
            raise ConfigError(f"{optimizer}.lr: expected a number > 0, got {lr!r}")
        self.family, self.optimizer, self.lr = family, optimizer, float(lr)
        self.momentum, self.betas, self.eps = momentum, betas, eps
        self.init_std, self.seed = init_std, seed
        self.name = name or optimizer

    def init(self, x_query: Tensor) -> State:
        p, t = self.family.predictor, x_query.shape[0]
        if isinstance(p, MLPPredictor):
            theta = sample_theta(p, t, self.init_std, generator(self.seed))
        else:
            theta = torch.zeros(t, p.n_tokens, p.token_dim)
        theta = theta.to(device=x_query.device, dtype=x_query.dtype)
        zeros = torch.zeros_like(theta)
        return {"theta": theta, "m": zeros, "v": zeros.clone(), "t": x_query.new_zeros(t)}

    def gradient(self, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """d(mean mini-batch loss)/d theta for each task ``[T, K, E]`` (tasks are independent, so the
        gradient of the sum over tasks is every task's own gradient)."""
        with torch.enable_grad():
            theta = theta.detach().requires_grad_(True)
            loss = self.family.loss(self.family.predictor(x, theta), y).sum()
            return torch.autograd.grad(loss, theta)[0]

    def step(self, state: State, x: Tensor, y: Tensor) -> State:
        theta, m, v, t = state["theta"], state["m"], state["v"], state["t"] + 1
        g = self.gradient(theta, x, y)
        if self.optimizer == "sgd":
            # torch.optim.SGD: the first step's buffer is the gradient itself
            m = g if self.momentum == 0 else torch.where(t.view(-1, 1, 1) == 1, g, self.momentum * m + g)
            return {"theta": theta - self.lr * m, "m": m, "v": v, "t": t}
        # the same operations, in the same order, as torch.optim.Adam's single-tensor path
        b1, b2 = self.betas
        m = m.lerp(g, 1 - b1)
        v = v * b2 + (1 - b2) * g * g
        tt = t.view(-1, 1, 1)
        denom = v.sqrt() / (1 - b2**tt).sqrt() + self.eps
        return {"theta": theta - (self.lr / (1 - b1**tt)) * (m / denom), "m": m, "v": v, "t": t}

    def predict(self, state: State, x_query: Tensor) -> Tensor:
        return self.family.predictor(x_query, state["theta"])
