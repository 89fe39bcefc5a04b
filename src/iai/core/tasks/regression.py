"""Regression task families: a linear teacher (with an exact Bayesian reference) and an MLP teacher."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from iai.core.predictors import LinearPredictor
from iai.core.tasks.base import MLPTeacher, RegressionFamily


@dataclass(frozen=True)
class LinearRegressionTasks(RegressionFamily):
    """w ~ N(0, prior_std^2 I), y = w^T x + eps, eps ~ N(0, noise_std^2).

    The known predictor is linear without bias (one state token holding w); the Bayes posterior is
    conjugate, so :class:`iai.core.learners.exact.ConjugateLinearRegression` is the optimal learner.
    """

    kind: ClassVar[str] = "linear_regression"

    @property
    def predictor(self) -> LinearPredictor:
        return LinearPredictor(self.dim, 1, bias=False)

    @property
    def noise_var(self) -> float:
        return self.noise_std**2

    @property
    def prior_var(self) -> float:
        return self.prior_std**2


@dataclass(frozen=True)
class NonlinearRegressionTasks(MLPTeacher, RegressionFamily):
    """A random one-hidden-layer tanh MLP teacher (weights ~ N(0, prior_std^2)) plus Gaussian noise."""

    kind: ClassVar[str] = "nonlinear_regression"
