"""Classical optimizers on the family's known predictor, fed the same mini-batches as every learner.

One optimizer step per mini-batch on the mean loss of that mini-batch, per task. The updates are
written out (rather than calling ``torch.optim``) so that the optimizer's moments live in the
learner's state, vectorized over tasks; ``tests/test_classical.py`` checks them against
``torch.optim.SGD`` and ``torch.optim.Adam`` on the same data, parameter for parameter.

Two options turn the constant-step optimizers into the stronger references of :data:`VARIANTS`:

- ``decay``: the step size of step t (t = 1, 2, ...) is ``lr`` (``"none"``), ``lr / sqrt(t)``
  (``"sqrt"``) or ``lr * b / (n + b)`` (``"gain"``: n points read before this step, b in this
  mini-batch; the running-average gain of the learned learners, see below).
- ``average``: predict with the uniform running average of the iterates theta_1 .. theta_t
  (Polyak-Ruppert averaging; state key ``"avg"``) instead of the last iterate.

``sgd_avg`` and ``adam_avg`` are averaged SGD and Adam with ``lr / sqrt(t)``: the classical recipe
for averaged stochastic gradient (Polyak & Juditsky 1992; Bach & Moulines 2011). A step of order
t^(-1/2), slower than 1/t, keeps the iterates moving fast enough to forget theta_0 whatever the
curvature (a 1/t step is optimal only when its constant matches the inverse curvature, and can be
arbitrarily slow otherwise), and averaging then cancels the iterates' O(lr_t) noise, so the
average reaches the O(1 / n) rate of a one-pass estimator without knowing the curvature (Bach &
Moulines 2011). A constant step instead stalls at an excess risk of order lr * noise. Over a short
pass the first iterates, far from the optimum, still weigh on the uniform average: the variants
pay early (few steps) for a lower error late.

``nominal_rule`` is the hand-written term of the learned parametric learners with the learned
part at zero (:class:`iai.core.learners.parametric.ParametricLearner` with ``nominal``):
theta <- theta - b / (n + b) * lr * grad, lr = exp(-0.6931) = 0.5, untrained and not tuned.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from iai.core.learners.base import State
from iai.core.predictors import MLPPredictor, sample_theta
from iai.core.tasks import TaskFamily
from iai.utils import ConfigError, generator

OPTIMIZERS = ("sgd", "adam")
DECAYS = ("none", "sqrt", "gain")
# the step size of the nominal rule: exp of the learned parametric learners' initial log_lr
NOMINAL_LR = math.exp(-0.6931)
# reference name -> (optimizer, options): every learner of this module, by its name in the params
VARIANTS = {
    "sgd": ("sgd", {}),
    "adam": ("adam", {}),
    "sgd_avg": ("sgd", {"decay": "sqrt", "average": True}),
    "adam_avg": ("adam", {"decay": "sqrt", "average": True}),
    "nominal_rule": ("sgd", {"decay": "gain"}),
}


class GradientLearner:
    """SGD (with optional momentum) or Adam on f(x, theta), from theta = 0 (or a small random draw
    for an MLP, whose zero point is a saddle); optionally with a decaying step (``decay``) and
    predictions from the running average of the iterates (``average``), see the module doc."""

    regime = "classical"
    signal = "none"

    def __init__(self, family: TaskFamily, optimizer: str = "adam", lr: float = 1e-2,
                 momentum: float = 0.0, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 init_std: float = 0.1, seed: int = 0, name: str | None = None,
                 decay: str = "none", average: bool = False):
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer: unknown {optimizer!r}; expected one of {list(OPTIMIZERS)}")
        if decay not in DECAYS:
            raise ConfigError(f"decay: unknown {decay!r}; expected one of {list(DECAYS)}")
        if not lr > 0:
            raise ConfigError(f"{name or optimizer}.lr: expected a number > 0, got {lr!r}")
        self.family, self.optimizer, self.lr = family, optimizer, float(lr)
        self.momentum, self.betas, self.eps = momentum, betas, eps
        self.decay, self.average = decay, bool(average)
        self.nominal = decay == "gain"  # the results table's `nominal` column: the hand-written term itself
        self.init_std, self.seed = init_std, seed
        self.name = name or optimizer

    @classmethod
    def named(cls, family: TaskFamily, name: str, lr: float, **kwargs) -> "GradientLearner":
        """The learner of reference ``name`` (a key of :data:`VARIANTS`) with step size ``lr``."""
        if name not in VARIANTS:
            raise ConfigError(f"unknown gradient reference {name!r}; expected one of {list(VARIANTS)}")
        optimizer, options = VARIANTS[name]
        return cls(family, optimizer, lr=lr, name=name, **options, **kwargs)

    def init(self, x_query: Tensor) -> State:
        p, t = self.family.predictor, x_query.shape[0]
        if isinstance(p, MLPPredictor):
            theta = sample_theta(p, t, self.init_std, generator(self.seed))
        else:
            theta = torch.zeros(t, p.n_tokens, p.token_dim)
        theta = theta.to(device=x_query.device, dtype=x_query.dtype)
        zeros = torch.zeros_like(theta)
        state = {"theta": theta, "m": zeros, "v": zeros.clone(), "t": x_query.new_zeros(t)}
        if self.decay == "gain":
            state["n"] = x_query.new_zeros(t)  # points read so far
        if self.average:
            state["avg"] = theta  # the average of no iterates: theta_0, until the first step
        return state

    def step_size(self, state: State, t: Tensor, b: int) -> Tensor:
        """The step size of step ``t`` (1, 2, ...) per task ``[T, 1, 1]``."""
        if self.decay == "sqrt":
            lr = self.lr / t.sqrt()
        elif self.decay == "gain":
            lr = self.lr * b / (state["n"] + b)
        else:
            lr = torch.full_like(t, self.lr)
        return lr.view(-1, 1, 1)

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
        b = x.shape[1]
        # a constant step keeps the plain float (the same numbers as torch.optim with a constant lr)
        lr = self.lr if self.decay == "none" else self.step_size(state, t, b).to(theta.dtype)
        if self.optimizer == "sgd":
            # torch.optim.SGD: the first step's buffer is the gradient itself
            m = g if self.momentum == 0 else torch.where(t.view(-1, 1, 1) == 1, g, self.momentum * m + g)
            theta = theta - lr * m
        else:
            # the same operations, in the same order, as torch.optim.Adam's single-tensor path
            b1, b2 = self.betas
            m = m.lerp(g, 1 - b1)
            v = v * b2 + (1 - b2) * g * g
            tt = t.view(-1, 1, 1)
            denom = v.sqrt() / (1 - b2**tt).sqrt() + self.eps
            theta = theta - (lr / (1 - b1**tt)) * (m / denom)
        new = {"theta": theta, "m": m, "v": v, "t": t}
        if self.decay == "gain":
            new["n"] = state["n"] + b
        if self.average:  # the running mean of theta_1 .. theta_t (theta_0 gets weight 0 at t = 1)
            avg = state["avg"]
            new["avg"] = avg + (theta - avg) / t.view(-1, 1, 1)
        return new

    def predict(self, state: State, x_query: Tensor) -> Tensor:
        return self.family.predictor(x_query, state["avg" if self.average else "theta"])
