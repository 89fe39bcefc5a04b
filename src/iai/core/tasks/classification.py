"""Classification task families: a softmax-linear teacher and an MLP teacher."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from iai.core.predictors import LinearPredictor
from iai.core.tasks.base import ClassificationFamily, MLPTeacher


@dataclass(frozen=True)
class LinearClassificationTasks(ClassificationFamily):
    """logits = (W x + b) / temperature with W, b ~ N(0, prior_std^2); one state token per class."""

    kind: ClassVar[str] = "linear_classification"

    @property
    def predictor(self) -> LinearPredictor:
        return LinearPredictor(self.dim, self.n_classes, bias=True)


@dataclass(frozen=True)
class NonlinearClassificationTasks(MLPTeacher, ClassificationFamily):
    """logits from a random one-hidden-layer tanh MLP teacher; one state token per hidden unit."""

    kind: ClassVar[str] = "nonlinear_classification"
