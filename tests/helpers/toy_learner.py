"""A learned learner defined outside the package: the Extending section's example, registered here alone.

It predicts a learned affine map of the running mean of the labels it has read (an implicit-regime
learner with two numbers to learn). Importing this module is all it takes for ``arch: toy_mean`` to
build it: no file of the package names it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from iai.core.learners import LearnedLearner, learner
from iai.core.learners.backbone import update_gain


@learner("toy_mean", example=("linear_regression", {"dim": 3, "noise_std": 0.5},
                               {"regime": "implicit", "arch": "toy_mean"}))
class ToyMeanLearner(LearnedLearner):
    regime = "implicit"

    def __init__(self, name, family, cfg, model, batch_size, context_size):
        super().__init__(name, family, cfg, model, batch_size, context_size)
        self.scale = nn.Parameter(torch.ones(family.out_dim))
        self.shift = nn.Parameter(torch.zeros(family.out_dim))

    def init(self, x_query: Tensor) -> dict[str, Tensor]:
        t = x_query.shape[0]
        return {"mean": x_query.new_zeros(t, self.family.out_dim), "n": x_query.new_zeros(t)}

    def step(self, state, x, y):
        gain = update_gain(state["n"], x.shape[1], self.cfg.update_scale).view(-1, 1).to(y.dtype)
        return {"mean": state["mean"] + gain * (y.mean(1) - state["mean"]), "n": state["n"] + x.shape[1]}

    def predict(self, state, x_query):
        out = self.scale * state["mean"] + self.shift  # [T, O]
        return out.unsqueeze(1).expand(-1, x_query.shape[1], -1)
