"""MAML and Meta-SGD in the iterative frame: plain gradient steps on f's loss from a learned theta^(0).

    theta^(0) learned;  theta^(i+1) = theta^(i) - exp(log_lr) * gain_i * grad L(f(., theta^(i)), B^(i))

with one learned step size (MAML, ``update: sgd``) or one per parameter (Meta-SGD, ``update: meta_sgd``,
Li et al. 2017: ``log_lr`` has theta's shape and the product is elementwise).

The paper's table (docs/paper.md, section 1) lists MAML as the learner whose task adaptation g is SGD
from a learned initialization: what is learned across tasks is the init. Here the step size is
learned too (one scalar, as Meta-SGD learns it per parameter), and each step is scaled by the gain
b / (n + b) of the parametric learners (``update_scale``), so the rule is the ``nominal_rule``
reference with its two numbers (theta^(0) = 0, lr = 0.5) learned instead of written: the table
puts the two side by side, which shows what learning adds to the rule.

Greedy training (detached states) gives theta^(0) a gradient from the first step's loss only, and
the step size a gradient from every step. Where theta carries a gradient (the first step in
training), the step differentiates through the mini-batch gradient, as MAML does: d theta^(1) /
d theta^(0) = I - lr * gain * H, H the mini-batch loss's Hessian (``update: sgd`` is second-order
MAML, not its first-order approximation). Elsewhere (detached states, evaluation under no_grad)
the gradient is the closed form the other learners read. There is no step network, so the update
is hand-written by construction: the learner is ``nominal`` in the results table and no claim
counts it.
"""

from __future__ import annotations

import torch
from torch import nn

from iai.core.learners.backbone import LearnerConfig, ModelConfig, update_gain
from iai.core.learners.base import State
from iai.core.learners.learned import LearnedLearner, learner
from iai.core.learners.parametric import ParametricLearner
from iai.core.tasks import TaskFamily


@learner("maml", example=("linear_classification", {"dim": 4, "n_classes": 3},
                             {"regime": "parametric", "signal": "grad", "update": "sgd"}))
class MAMLLearner(ParametricLearner):
    """The parametric regime's learner with ``update: sgd``: f's parameters, moved by plain gradient steps."""

    for_update = "sgd"

    def __init__(self, name: str, family: TaskFamily, cfg: LearnerConfig, model: ModelConfig,
                 batch_size: int, context_size: int):
        # the shared attributes only: ParametricLearner.__init__ builds the step network (tokens, backbone,
        # head) that MAML's plain gradient step replaces; MAML keeps its theta, f, gradient and predict
        LearnedLearner.__init__(self, name, family, cfg, model, batch_size, context_size)
        self.nominal, self.own_features = True, False  # its update is the nominal term alone
        self.n_units, self.unit_dim = self.state_shape()
        self.theta0 = nn.Parameter(self.initial_state())  # [K, E]
        # the nominal rule's log step size (lr 0.5, the nominal learners' start) as the starting point
        self.log_lr = nn.Parameter(self.theta0.new_tensor(-0.6931))

    def step(self, state: State, x, y) -> State:
        theta, n, b = state["theta"], state["n"], x.shape[1]
        if torch.is_grad_enabled() and theta.requires_grad:  # MAML's inner gradient, itself differentiable
            with torch.autocast(theta.device.type, enabled=False):
                loss = self.family.loss(self.f(x.float(), theta.float()), y.float()).sum()  # tasks are independent
                grad = torch.autograd.grad(loss, theta, create_graph=True)[0]
        else:
            grad = self.gradient(theta, x, y)  # [T, K, E], the same numbers without a graph
        gain = update_gain(n, b, self.cfg.update_scale).view(-1, 1, 1).to(theta.dtype)
        return {"theta": theta - self.log_lr.exp() * gain * grad.to(theta.dtype), "n": n + b}

    def extra_repr(self) -> str:
        return f"name={self.name!r}, regime={self.regime}, update=sgd (MAML), state={self.n_units}x{self.unit_dim}"


@learner("meta_sgd", example=("linear_classification", {"dim": 4, "n_classes": 3},
                                 {"regime": "parametric", "signal": "grad", "update": "meta_sgd"}))
class MetaSGDLearner(MAMLLearner):
    """MAML with a learned step size per parameter (``update: meta_sgd``): every one starts at the
    nominal rule's 0.5, so untrained it is that rule, as MAML is; training moves each on its own."""

    for_update = "meta_sgd"

    def __init__(self, name: str, family: TaskFamily, cfg: LearnerConfig, model: ModelConfig,
                 batch_size: int, context_size: int):
        super().__init__(name, family, cfg, model, batch_size, context_size)
        self.log_lr = nn.Parameter(torch.full_like(self.theta0, -0.6931))  # [K, E], elementwise with grad

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, regime={self.regime}, update=meta_sgd (a step size per parameter), "
                f"state={self.n_units}x{self.unit_dim}")
