"""Exact and nonparametric reference learners (no training; vectorized over tasks).

- :class:`ConjugateLinearRegression`: the Bayesian linear-regression posterior, updated one
  mini-batch at a time (precision += X^T X / s^2, h += X^T y / s^2). It equals the batch posterior
  for any split, so it is the perfect *iterative* learner; with ``prior_var=None`` it is min-norm
  least squares on all data seen so far (which diverges near n = d when there is noise).
- :class:`MAPLearner`: the MAP estimate of the family's known predictor under its prior, refit by
  L-BFGS on all data seen so far (the practical reference for classification).
- :class:`KNNLearner`: k nearest neighbours over all data seen so far.

Exact learners compute in float64 whatever their inputs' dtype, and return the input dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

from iai.core.learners.base import State
from iai.core.predictors import MLPPredictor
from iai.core.tasks import GenerationFamily, TaskFamily
from iai.utils import ConfigError

_F64 = torch.float64


def bayes_posterior(x: Tensor, y: Tensor, noise_var: float, prior_var: float) -> tuple[Tensor, Tensor]:
    """Batch posterior of w for y = x w + eps: mean ``[T, D]`` and covariance ``[T, D, D]``.

    Sigma = (X^T X / s^2 + I / t^2)^-1 and mu = Sigma X^T y / s^2 = (X^T X + lambda I)^-1 X^T y,
    lambda = s^2 / t^2 (ridge with that lambda is Bayes-optimal under squared loss).
    """
    x, y = x.to(_F64), y.to(_F64)[..., 0]
    eye = torch.eye(x.shape[-1], dtype=_F64, device=x.device)
    precision = x.mT @ x / noise_var + eye / prior_var
    cov = torch.linalg.inv(precision)
    mean = (cov @ (x.mT @ y.unsqueeze(-1))).squeeze(-1) / noise_var
    return mean, cov


class ConjugateLinearRegression:
    """Sequential Bayes (``prior_var`` given) or min-norm least squares (``prior_var=None``)."""

    regime = "exact"
    signal = "none"

    def __init__(self, noise_var: float, prior_var: float | None, name: str | None = None):
        if noise_var <= 0 and prior_var is not None:
            raise ConfigError("noise_var: the Bayes posterior needs noise_std > 0")
        self.noise_var, self.prior_var = noise_var, prior_var
        self.name = name or ("bayes" if prior_var is not None else "ols")

    @classmethod
    def bayes(cls, family: TaskFamily) -> "ConjugateLinearRegression":
        return cls(family.noise_var, family.prior_var, "bayes")

    @classmethod
    def least_squares(cls, family: TaskFamily) -> "ConjugateLinearRegression":
        return cls(1.0, None, "ols")

    def init(self, x_query: Tensor) -> State:
        t, _, d = x_query.shape
        eye = torch.eye(d, dtype=_F64, device=x_query.device).expand(t, d, d)
        prior_precision = eye / self.prior_var if self.prior_var is not None else 0 * eye
        return {"precision": prior_precision.clone(), "h": x_query.new_zeros(t, d, dtype=_F64)}

    def step(self, state: State, x: Tensor, y: Tensor) -> State:
        x, y = x.to(_F64), y.to(_F64)[..., 0]
        return {"precision": state["precision"] + x.mT @ x / self.noise_var,
                "h": state["h"] + (x.mT @ y.unsqueeze(-1)).squeeze(-1) / self.noise_var}

    def mean(self, state: State) -> Tensor:
        """Posterior mean (or min-norm least-squares solution) ``[T, D]``."""
        h = state["h"].unsqueeze(-1)
        if self.prior_var is not None:
            return torch.linalg.solve(state["precision"], h).squeeze(-1)
        return (torch.linalg.pinv(state["precision"], hermitian=True) @ h).squeeze(-1)

    def predict(self, state: State, x_query: Tensor) -> Tensor:
        return (x_query.to(_F64) @ self.mean(state).unsqueeze(-1)).to(x_query.dtype)


class _DataStore:
    """State = all points seen so far (for learners whose answer is a function of all the data)."""

    def init(self, x_query: Tensor) -> State:
        t, _, d = x_query.shape
        return {"x": x_query.new_zeros(t, 0, d), "y": x_query.new_zeros(t, 0, self.family.out_dim)}

    def _append(self, state: State, x: Tensor, y: Tensor) -> State:
        return {**state, "x": torch.cat([state["x"], x], 1), "y": torch.cat([state["y"], y], 1)}


class KNNLearner(_DataStore):
    """k nearest neighbours: mean of the neighbours' y (regression) or smoothed class frequencies
    returned as log-probabilities (classification), so that NLL stays finite."""

    regime = "exact"
    signal = "none"

    def __init__(self, family: TaskFamily, k: int = 8, smoothing: float = 0.5, name: str = "knn"):
        if k < 1:
            raise ConfigError(f"knn.k: expected an integer >= 1, got {k}")
        self.family, self.k, self.smoothing, self.name = family, k, smoothing, name

    def step(self, state: State, x: Tensor, y: Tensor) -> State:
        return self._append(state, x, y)

    def predict(self, state: State, x_query: Tensor) -> Tensor:
        xs, ys = state["x"], state["y"]
        if xs.shape[1] == 0:
            raise ConfigError("knn: predict was called before any step")
        k = min(self.k, xs.shape[1])
        idx = torch.cdist(x_query, xs).topk(k, dim=-1, largest=False).indices  # [T, M, k]
        neigh = torch.gather(ys.unsqueeze(1).expand(-1, idx.shape[1], -1, -1), 2,
                             idx.unsqueeze(-1).expand(-1, -1, -1, ys.shape[-1]))  # [T, M, k, O]
        if self.family.task_type == "regression":
            return neigh.mean(2)
        counts = neigh.sum(2) + self.smoothing
        return (counts / counts.sum(-1, keepdim=True)).log()


class MAPLearner(_DataStore):
    """argmax_theta log p(theta) + sum log p(y | f(x, theta)) over all data seen so far.

    Fit by L-BFGS (strong-Wolfe line search) when a prediction is asked for. The objective is a sum
    of independent per-task objectives, so one L-BFGS run over the stacked thetas of all tasks solves
    every task at once; for convex families (linear and softmax-linear) it converges to each task's
    unique MAP. There each fit starts from the previous one (``predict`` keeps it in the state): the
    minimizer does not depend on the start, and refitting after one more mini-batch from the last
    answer takes a few iterations where a fit from zero took hundreds (most of a classification
    family's reference job). An MLP's objective is not convex: every fit starts from the same fixed
    draw, so that its answer does not depend on which steps were scored before.
    """

    regime = "exact"
    signal = "none"

    def __init__(self, family: TaskFamily, max_iter: int = 500, tol: float = 1e-9, name: str = "map"):
        self.family, self.max_iter, self.tol, self.name = family, max_iter, tol, name

    def init(self, x_query: Tensor) -> State:
        p = self.family.predictor
        theta = x_query.new_zeros(x_query.shape[0], p.n_tokens, p.token_dim, dtype=_F64)
        if isinstance(p, MLPPredictor):
            # zero is a saddle of an MLP's objective: start from a small fixed draw instead
            g = torch.Generator().manual_seed(0)
            theta = 0.1 * torch.randn(theta.shape, generator=g, dtype=_F64).to(x_query.device)
        return {**super().init(x_query), "theta": theta}

    def objective(self, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """Per-task negative log posterior (up to a constant) ``[T]``."""
        prior = theta.pow(2).sum((-1, -2)) / (2 * self.family.theta_prior_std**2)
        return self.family.nll_sum(self.family.predictor(x, theta), y) + prior

    def step(self, state: State, x: Tensor, y: Tensor) -> State:
        return self._append(state, x, y)  # the fit happens when a prediction is asked for

    def fit(self, state: State) -> Tensor:
        """The MAP theta ``[T, K, E]`` (float64) given all data in ``state``."""
        xs, ys = state["x"].to(_F64), state["y"].to(_F64)
        theta = state["theta"].clone().requires_grad_(True)
        opt = torch.optim.LBFGS([theta], lr=1, max_iter=self.max_iter, tolerance_grad=self.tol,
                                tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            opt.zero_grad()
            loss = self.objective(theta, xs, ys).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        return theta.detach()

    def predict(self, state: State, x_query: Tensor) -> Tensor:
        theta = self.fit(state)
        if not isinstance(self.family.predictor, MLPPredictor):
            state["theta"] = theta  # the next fit's start (convex: the same minimizer, fewer iterations)
        return self.family.predictor(x_query.to(_F64), theta).to(x_query.dtype)


class PriorLearner:
    """The trivial predictor: the prior predictive, reading nothing (the floor of the claims'
    competence gate). Regression: the prior mean of the target, 0 (every family's weights have a
    zero-mean prior); classification: uniform logits (chance); generation: samples of the standard
    normal the flow starts from, with zero velocity."""

    regime, signal, name = "exact", "none", "prior"

    def __init__(self, family: TaskFamily, seed: int = 0):
        self.family, self.seed = family, seed

    def init(self, x_query: Tensor) -> State:
        return {"n": x_query.new_zeros(x_query.shape[0])}

    def step(self, state: State, x: Tensor, y: Tensor) -> State:
        return {"n": state["n"] + x.shape[1]}

    def predict(self, state: State, x_query: Tensor) -> Tensor:
        if isinstance(self.family, GenerationFamily):
            xt, _, x0 = self.family.split_query(x_query)
            gen = torch.Generator().manual_seed(self.seed)
            noise = torch.randn(x0.shape, generator=gen, dtype=x0.dtype).to(x0.device)
            return torch.cat([torch.zeros_like(xt), noise], -1)
        return x_query.new_zeros(*x_query.shape[:2], self.family.out_dim)
