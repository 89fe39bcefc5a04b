"""The parametric regime: a learned step network refines the parameters of the family's fixed predictor.

    theta^(0) learned;  theta^(i+1) = theta^(i) + gain_i * h_phi(theta^(i), B^(i));  pred = f(x, theta^(K))

The state theta is tokenized by the predictor's structure (``predictor.n_tokens`` tokens of
``predictor.token_dim``: one token for linear regression's weight vector, one per class for a
softmax-linear map, one per hidden unit for an MLP). Each state token gets a learned *unit*
embedding, shared by that unit's gradient and history tokens, so a step can tell units apart
(class k's token must meet the k-th column of the one-hot labels). With ``tokens: coordinate``
(:class:`~iai.core.learners.backbone.LearnerConfig`) each scalar parameter is a token that carries
its own gradient and history features instead.

The step network reads, as one set of tokens:

- ``obs``: one token per observation (x, y) of the mini-batch (signal ``obs`` or ``both``);
- ``grad``: per unit, the gradient of f's mean loss on the mini-batch at the current theta,
  normalized (signal ``grad`` or ``both``; gradient-only is a learned optimizer);
- ``memory``: optional extra learned state tokens the step may write to (never read by f);
- ``history``: optional window of the last h states (and gradients), the non-Markovian variant.

:class:`ParametricLearner` is written against an abstract predictor ``self.f(x, theta)`` so that
the explicit regime (a learned decoder and a latent z in place of f and theta) is a subclass.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from iai.core.learners.backbone import (
    LearnerConfig,
    ModelConfig,
    SetTransformer,
    n_step_features,
    normalize_grad,
    step_features,
    update_gain,
    zero_linear,
)
from iai.core.learners.base import State
from iai.core.learners.learned import LearnedLearner, learner
from iai.core.predictors import LinearPredictor, MLPPredictor
from iai.core.tasks import ClassificationFamily, RegressionFamily, TaskFamily


@learner("parametric", example=("linear_regression", {"dim": 4, "noise_std": 0.5},
                                   {"regime": "parametric", "signal": "both", "history": 2, "memory": 2,
                                    "nominal": True}))
class ParametricLearner(LearnedLearner):
    """Learned iterative (or, with ``mode='one_shot'``, one-pass) learner of f's parameters."""

    regime = "parametric"

    def __init__(self, name: str, family: TaskFamily, cfg: LearnerConfig, model: ModelConfig,
                 batch_size: int, context_size: int):
        super().__init__(name, family, cfg, model, batch_size, context_size)
        self.n_units, self.unit_dim = self.state_shape()
        k, e, w = self.n_units, self.unit_dim, model.width
        self.theta0 = nn.Parameter(self.initial_state())  # [K, E]
        self.unit = nn.Parameter(0.02 * torch.randn(k, w))  # which unit a token belongs to
        n_step = n_step_features(cfg)
        # coordinate tokens carry their own gradient and history (as a coordinate-wise learned
        # optimizer's input does): a separate gradient or history token would have to be found among
        # K (h * K) others by its unit embedding alone, and would multiply the tokens
        self.own_features = cfg.tokens == "coordinate"
        hist_dim = e + (e + 1 if self.uses_grad else 0) + 1  # a past state, its gradient, a present flag
        dims = {"state": e + n_step + ((e + 1 if self.uses_grad else 0) + cfg.history * hist_dim
                                       if self.own_features else 0)}
        if self.uses_grad and not self.own_features:
            dims["grad"] = e + 1
        if self.uses_obs:
            dims["obs"] = family.in_dim + family.out_dim
        if cfg.memory:
            self.memory0 = nn.Parameter(torch.zeros(cfg.memory, e))
            self.memory_unit = nn.Parameter(0.02 * torch.randn(cfg.memory, w))
            self.memory_head = zero_linear(w, e)
            dims["memory"] = e + n_step
        if cfg.history and not self.own_features:
            self.lag = nn.Parameter(0.02 * torch.randn(cfg.history, w))
            dims["history"] = hist_dim
        self.backbone = SetTransformer(model, dims)
        self.head = zero_linear(w, e)
        if cfg.nominal:  # log step size of the plain gradient term (0.5: Newton's step on a unit-variance MSE)
            self.log_lr = nn.Parameter(torch.tensor(-0.6931))

    # ------------------------------------------------------------------ what the subclasses change
    def state_shape(self) -> tuple[int, int]:
        p = self.family.predictor
        if self.cfg.tokens == "coordinate":
            return p.n_tokens * p.token_dim, 1
        return p.n_tokens, p.token_dim

    def as_predictor_layout(self, theta: Tensor) -> Tensor:
        """theta ``[T, K, E]`` in the predictor's own layout (``[T, n_tokens, token_dim]``)."""
        if self.cfg.tokens == "coordinate":
            p = self.family.predictor
            return theta.reshape(*theta.shape[:-2], p.n_tokens, p.token_dim)
        return theta

    def initial_state(self) -> Tensor:
        """theta^(0) before training: the prior mean (zero) for linear maps; a small fixed draw for an
        MLP, whose zero point is a saddle."""
        k, e = self.state_shape()
        if isinstance(self.family.predictor, MLPPredictor):
            return 0.1 * torch.randn(k, e)
        return torch.zeros(k, e)

    def f(self, x: Tensor, theta: Tensor) -> Tensor:
        """The predictor: x ``[T, M, D]``, theta ``[T, K, E]`` -> ``[T, M, O]``."""
        return self.family.predictor(x, self.as_predictor_layout(theta))

    # ------------------------------------------------------------------ the protocol
    @property
    def uses_grad(self) -> bool:
        return self.signal in ("grad", "both")

    @property
    def uses_obs(self) -> bool:
        return self.signal in ("obs", "both")

    def init(self, x_query: Tensor) -> State:
        t = x_query.shape[0]
        theta = self.theta0.to(x_query.dtype).expand(t, -1, -1)
        state = {"theta": theta, "n": x_query.new_zeros(t)}
        if self.cfg.memory:
            state["memory"] = self.memory0.to(x_query.dtype).expand(t, -1, -1)
        if self.history:
            k, e, h = self.n_units, self.unit_dim, self.history
            state["hist"] = x_query.new_zeros(t, h, k, e + (e + 1 if self.uses_grad else 0) + 1)
        return state

    def gradient(self, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """d(mean mini-batch loss of f)/d theta per task ``[T, K, E]``, in float32, outside any
        autocast and any outer ``no_grad``; a feature only (no gradient flows back through it)."""
        closed = self._linear_gradient(theta, x, y)
        if closed is not None:
            return closed
        device_type = theta.device.type
        with torch.enable_grad(), torch.autocast(device_type, enabled=False):
            th = theta.detach().float().requires_grad_(True)
            loss = self.family.loss(self.f(x.float(), th), y.float()).sum()
            return torch.autograd.grad(loss, th)[0]

    def _linear_gradient(self, theta: Tensor, x: Tensor, y: Tensor) -> Tensor | None:
        """:meth:`gradient` in closed form for a linear predictor with the squared or cross-entropy loss
        of its family, written as the same operations autograd runs (the same numbers, no graph: the
        autograd call was most of a step's time). None where it does not apply."""
        p, fam = self.family.predictor, type(self.family)
        if type(self).f is not ParametricLearner.f or not isinstance(p, LinearPredictor):
            return None
        regression = fam.loss is RegressionFamily.loss
        if not (regression or fam.loss is ClassificationFamily.loss):
            return None
        with torch.autocast(theta.device.type, enabled=False):
            x, y, th = x.float(), y.float(), self.as_predictor_layout(theta.detach().float())
            pred = p(x, th)  # [T, b, O]
            scale = 1.0 / x.shape[1]  # the mean over points
            if regression:  # d/dpred of mean_m sum_o (pred - y)^2
                g = scale * (2 * (pred - y))
            else:  # d/dpred of -mean_m sum_o y log_softmax(pred): log_softmax's backward
                g = torch.ops.aten._log_softmax_backward_data((-scale) * y, pred.log_softmax(-1), -1, pred.dtype)
            gw = (x.mT @ g).mT  # [T, O, D]: the einsum's backward
            if p.bias:
                gw = torch.cat([gw, g.sum(1).unsqueeze(-1)], -1)
            return gw.reshape(theta.shape)

    def step(self, state: State, x: Tensor, y: Tensor) -> State:
        # x [T, b, D], y [T, b, O]; any b >= 1
        theta, n, b = state["theta"], state["n"], x.shape[1]
        k = self.n_units
        sf = step_features(n, b, self.cfg).to(theta.dtype)  # [T, F]
        g = raw = None
        if self.uses_grad:
            raw = self.gradient(theta, x, y)  # [T, K, E]
            g = normalize_grad(raw, self.cfg.grad_norm).to(theta.dtype)  # [T, K, E+1]
        own = [theta, sf.unsqueeze(1).expand(-1, k, -1)]
        if self.own_features:  # [T, K, E+1] and [T, h, K, F_h] -> [T, K, h*F_h]
            own += ([g] if g is not None else []) + ([state["hist"].transpose(1, 2).flatten(2)] if self.history else [])
        inputs = [("state", torch.cat(own, -1), self.unit)]
        if g is not None and not self.own_features:
            inputs.append(("grad", g, self.unit))
        if self.cfg.memory:
            mem = state["memory"]
            inputs.append(("memory", torch.cat([mem, sf.unsqueeze(1).expand(-1, mem.shape[1], -1)], -1),
                           self.memory_unit))
        if self.history and not self.own_features:
            hist = state["hist"]  # [T, h, K, F_h]
            unit = (self.unit.unsqueeze(0) + self.lag.unsqueeze(1)).flatten(0, 1)  # [h*K, W]
            inputs.append(("history", hist.flatten(1, 2), unit))
        if self.uses_obs:
            inputs.append(("obs", torch.cat([x, y], -1), None))
        # the heads read the state tokens (group 0) and the memory tokens, which come right after
        # the gradient tokens (if any): the last block skips the rest
        at_memory = 2 if any(group == "grad" for group, _, _ in inputs) else 1
        out = self.backbone(inputs, n_context_groups=len(inputs), outputs=(0, at_memory + 1 if self.cfg.memory else 1))
        gain = update_gain(n, b, self.cfg.update_scale).view(-1, 1, 1).to(theta.dtype)
        delta = self.head(out[0]).to(theta.dtype)
        if self.cfg.nominal:  # gain * (-lr * grad) + gain^2 * learned: the learned part fades as data accumulate
            delta = gain * delta - self.log_lr.exp() * raw.to(theta.dtype)
        new = {"theta": theta + gain * delta, "n": n + b}
        if self.cfg.memory:
            new["memory"] = state["memory"] + gain * self.memory_head(out[at_memory]).to(theta.dtype)
        if self.history:
            now = [theta] + ([g] if g is not None else []) + [theta.new_ones(*theta.shape[:-1], 1)]
            new["hist"] = torch.cat([torch.cat(now, -1).unsqueeze(1), state["hist"][:, :-1]], 1)
        return new

    def predict(self, state: State, x_query: Tensor) -> Tensor:
        return self.f(x_query, state["theta"])

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, regime={self.regime}, signal={self.signal}, mode={self.mode}, "
                f"state={self.n_units}x{self.unit_dim} ({self.cfg.tokens} tokens), history={self.history}, "
                f"memory={self.cfg.memory}")
