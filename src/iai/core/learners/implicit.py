"""The implicit regime: the state is the running prediction at each query, refined by reading mini-batches.

    yhat^(0) learned;  yhat^(i+1) = yhat^(i) + gain_i * r_gamma([x_q, yhat^(i)], B^(i))

One query token per point asked about carries (x_q, its current state, the step features, and an
optional window of its past states); it attends to the mini-batch's observation tokens, never to the
other queries, so the prediction at x_q does not depend on which other points are asked about.

What the state carries (``state``):

- ``logits``: the prediction itself (logits for classification, the value for regression);
- ``probs``: class probabilities (classification only), updated *on the simplex* by a convex mixture,
  p <- (1 - g) p + g softmax(delta) with g = b/(n+b): a running average of per-mini-batch predictive
  distributions. (A multiplicative update softmax(log p + delta) would be the logits update in
  disguise, so comparing it with logits would test nothing.)
- ``probs_residual``: class probabilities (classification only) carrying the logits learner's update
  on the simplex: the same residual output delta = head(backbone(...)) and the same gain
  g = update_gain(...), added to the probabilities and put back on the simplex,

      p <- c / sum_k c_k,   c = max(p + g * delta, eps)   (clamp, then renormalize over classes)

  from p0 = softmax(pred0), so an untrained learner (zero head) stays at p0. Clamp-and-renormalize,
  not the Euclidean projection onto the simplex: the projection sets classes exactly to 0, where
  predict's clamped log p is flat, so a true class pushed off the support gets no gradient back. In a
  check with 3 classes, random p and N(0, s^2) deltas, the cross-entropy gradient was exactly zero for
  41% (s = 1) to 93% (s = 10) of rows under the projection against 5% to 14% here (every class keeps
  at least eps / sum c, and its loss still moves the others through the sum); neither bounds the
  largest gradient (the log's 1/p near the boundary dominates both).
- ``hidden``: a pre-head vector of ``model.width`` numbers; a learned linear head reads it out.

Because the state lives at the queries, :meth:`init` needs them and keeps them in the state.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from iai.core.learners.backbone import (
    LearnerConfig,
    ModelConfig,
    SetTransformer,
    n_step_features,
    step_features,
    update_gain,
    zero_linear,
)
from iai.core.learners.base import State
from iai.core.learners.learned import LearnedLearner, learner
from iai.core.tasks import TaskFamily
from iai.utils import ConfigError

_EPS = 1e-6
_SIMPLEX_STATES = ("probs", "probs_residual")  # states that are class probabilities


@learner("implicit", example=("linear_classification", {"dim": 4, "n_classes": 3},
                                 {"regime": "implicit", "state": "hidden", "history": 2}))
class ImplicitLearner(LearnedLearner):
    regime = "implicit"

    def __init__(self, name: str, family: TaskFamily, cfg: LearnerConfig, model: ModelConfig,
                 batch_size: int, context_size: int):
        if cfg.state in _SIMPLEX_STATES and family.task_type != "classification":
            raise ConfigError(f"run.state: {cfg.state!r} needs a classification family; {family.kind} is "
                              f"{family.task_type} (use 'logits' or 'hidden')")
        super().__init__(name, family, cfg, model, batch_size, context_size)
        d, o, w = family.in_dim, family.out_dim, model.width
        self.state_dim = w if cfg.state == "hidden" else o
        self.pred0 = nn.Parameter(torch.zeros(self.state_dim))  # the learned initial state
        self.readout = nn.Linear(w, o) if cfg.state == "hidden" else None
        query_dim = d + self.state_dim * (1 + cfg.history) + cfg.history + n_step_features(cfg)
        self.backbone = SetTransformer(model, {"obs": d + o, "query": query_dim})
        self.head = zero_linear(w, self.state_dim)

    def init(self, x_query: Tensor) -> State:
        t, m, _ = x_query.shape
        s0 = self.pred0.to(x_query.dtype)
        if self.state_kind in _SIMPLEX_STATES:
            s0 = s0.softmax(-1)
        state = {"s": s0.expand(t, m, -1), "x_query": x_query, "n": x_query.new_zeros(t)}
        if self.history:
            state["hist"] = x_query.new_zeros(t, m, self.history * (self.state_dim + 1))
        return state

    def step(self, state: State, x: Tensor, y: Tensor) -> State:
        # x [T, b, D], y [T, b, O]; queries [T, M, D], state s [T, M, S]
        s, xq, n, b = state["s"], state["x_query"], state["n"], x.shape[1]
        m = xq.shape[1]
        sf = step_features(n, b, self.cfg).to(s.dtype).unsqueeze(1).expand(-1, m, -1)
        parts = [xq, s, sf] + ([state["hist"]] if self.history else [])
        out = self.backbone([("obs", torch.cat([x, y], -1), None), ("query", torch.cat(parts, -1), None)],
                            n_context_groups=1, outputs=(1, 2))  # the head reads the queries only
        delta = self.head(out[1]).to(s.dtype)  # [T, M, S]
        gain = update_gain(n, b, self.cfg.update_scale).view(-1, 1, 1).to(s.dtype)
        if self.state_kind == "probs":  # a convex mixture: stays on the simplex, not a logit step
            mix = gain.clamp(max=1.0)
            new_s = (1 - mix) * s + mix * delta.softmax(-1)
        elif self.state_kind == "probs_residual":  # the logits step, added to p, back on the simplex
            c = (s + gain * delta).clamp_min(_EPS)
            new_s = c / c.sum(-1, keepdim=True)
        else:
            new_s = s + gain * delta
        new = {"s": new_s, "x_query": xq, "n": n + b}
        if self.history:
            k = self.state_dim + 1
            now = torch.cat([s, s.new_ones(*s.shape[:-1], 1)], -1)
            new["hist"] = torch.cat([now, state["hist"][..., :-k]], -1)
        return new

    def predict(self, state: State, x_query: Tensor) -> Tensor:
        if x_query.shape != state["x_query"].shape or not torch.equal(x_query, state["x_query"]):
            raise ConfigError("implicit learner: predict() must be asked about the queries given to init()")
        s = state["s"]
        if self.state_kind == "hidden":
            return self.readout(s)
        if self.state_kind in _SIMPLEX_STATES:
            return s.clamp_min(_EPS).log()
        return s

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, regime=implicit, state={self.state_kind}, mode={self.mode}, "
                f"history={self.history}")
