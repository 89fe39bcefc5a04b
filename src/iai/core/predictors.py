"""Fixed predictors f(x, theta): the known model family of the parametric regime.

A predictor's parameters theta are stored *tokenized*, ``[tasks, n_tokens, token_dim]``, because
that is how the learned step networks read and write them:

- :class:`LinearPredictor`: one token per output unit (its weight row, plus its bias when the map
  has one). Linear regression has one output, so one token holding w; a softmax-linear classifier
  over C classes has C tokens.
- :class:`MLPPredictor`: one token per hidden unit (its input weights, its bias, its output weights).

Predictors are pure functions of (x, theta), vectorized over tasks, and differentiable in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class LinearPredictor:
    """``f(x, theta) = x W^T (+ b)``; theta ``[T, out_dim, in_dim (+1)]``, a token per output unit."""

    in_dim: int
    out_dim: int = 1
    bias: bool = False

    @property
    def n_tokens(self) -> int:
        return self.out_dim

    @property
    def token_dim(self) -> int:
        return self.in_dim + int(self.bias)

    def __call__(self, x: Tensor, theta: Tensor) -> Tensor:
        # x [T, M, D], theta [T, O, D(+1)] -> [T, M, O]
        out = torch.einsum("tmd,tod->tmo", x, theta[..., : self.in_dim])
        if self.bias:
            out = out + theta[..., self.in_dim].unsqueeze(1)
        return out


@dataclass(frozen=True)
class MLPPredictor:
    """One hidden tanh layer, ``f(x) = tanh(x W1^T / sqrt(D) + b1) W2 / sqrt(H)``, no output bias.

    The 1/sqrt fan-in scalings live in the predictor so that an isotropic prior on theta gives
    outputs of order one for any width (the teacher and any learner share them).
    theta ``[T, H, D + 1 + O]``: a token per hidden unit = (input weights, bias, output weights).
    """

    in_dim: int
    hidden: int
    out_dim: int = 1

    @property
    def n_tokens(self) -> int:
        return self.hidden

    @property
    def token_dim(self) -> int:
        return self.in_dim + 1 + self.out_dim

    def __call__(self, x: Tensor, theta: Tensor) -> Tensor:
        d = self.in_dim
        w1, b1, w2 = theta[..., :d], theta[..., d], theta[..., d + 1 :]  # [T,H,D] [T,H] [T,H,O]
        pre = torch.einsum("tmd,thd->tmh", x, w1) / math.sqrt(d) + b1.unsqueeze(1)
        return torch.einsum("tmh,tho->tmo", torch.tanh(pre), w2) / math.sqrt(self.hidden)


Predictor = LinearPredictor | MLPPredictor


def sample_theta(predictor: Predictor, n_tasks: int, std: float, gen: torch.Generator) -> Tensor:
    """Draw theta from the isotropic prior N(0, std^2) shared by teachers and MAP learners."""
    shape = (n_tasks, predictor.n_tokens, predictor.token_dim)
    return std * torch.randn(shape, generator=gen)
