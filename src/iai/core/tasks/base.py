"""What every task family shares: the batched task container and the family interface."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from iai.core.predictors import MLPPredictor, Predictor, sample_theta
from iai.utils import ConfigError, generator

INPUT_DISTS = ("gaussian", "uniform")


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_num(value: Any, low: float, strict: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return value > low if strict else value >= low


@dataclass
class TaskBatch:
    """Many tasks at once, each with its own train and valid points.

    ``y`` is always float ``[T, N, out_dim]``: the value for regression, a one-hot row for
    classification, so observation tokens and losses look the same for every family.
    ``f_valid`` is the noiseless truth at the valid points (the regression function, or the
    teacher's class probabilities) and ``theta`` the teacher's parameters, both for metrics only:
    no learner reads them.
    """

    x_train: Tensor  # [T, N, D]
    y_train: Tensor  # [T, N, O]
    x_valid: Tensor  # [T, M, D]
    y_valid: Tensor  # [T, M, O]
    f_valid: Tensor  # [T, M, O]
    theta: Tensor  # [T, K, E]

    @property
    def n_tasks(self) -> int:
        return self.x_train.shape[0]

    @property
    def n_train(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_valid(self) -> int:
        return self.x_valid.shape[1]

    def _map(self, fn) -> "TaskBatch":
        return TaskBatch(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "TaskBatch":
        return self._map(lambda t: t.to(device=device, dtype=dtype or t.dtype))

    def head(self, n_train: int) -> "TaskBatch":
        """The same tasks with only their first ``n_train`` train points (banks are pre-shuffled)."""
        if not 0 < n_train <= self.n_train:
            raise ConfigError(f"n_train: expected 1..{self.n_train} for this bank, got {n_train}")
        out = dataclasses.replace(self)
        out.x_train, out.y_train = self.x_train[:, :n_train], self.y_train[:, :n_train]
        return out

    def tasks(self, index: slice | Tensor) -> "TaskBatch":
        """A subset of the tasks (e.g. a chunk that fits in memory)."""
        return self._map(lambda t: t[index])

    def state_dict(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_state_dict(cls, d: dict[str, Tensor]) -> "TaskBatch":
        missing = [f.name for f in fields(cls) if f.name not in d]
        if missing:
            raise ConfigError(f"task bank is missing tensors {missing}")
        return cls(**{f.name: d[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class TaskFamily:
    """A distribution over tasks. Subclasses are frozen dataclasses whose fields are the params.

    A family names its known predictor f(x, theta) (the parametric regime's fixed model), its
    per-task loss (what learners are trained on), its metrics, and its out-of-distribution variants.
    """

    kind: ClassVar[str]
    task_type: ClassVar[str]  # "regression" | "classification"
    metric_names: ClassVar[tuple[str, ...]]
    primary_metric: ClassVar[str]

    dim: int = 8
    prior_std: float = 1.0
    input_scale: float = 1.0
    input_dist: str = "gaussian"

    def __post_init__(self) -> None:
        self._check("dim", _is_int(self.dim, 1), "an integer >= 1")
        self._check("prior_std", _is_num(self.prior_std, 0, strict=True), "a number > 0")
        self._check("input_scale", _is_num(self.input_scale, 0, strict=True), "a number > 0")
        self._check("input_dist", self.input_dist in INPUT_DISTS, f"one of {list(INPUT_DISTS)}")

    def _check(self, name: str, ok: bool, expected: str) -> None:
        if not ok:
            raise ConfigError(f"{self.kind}.{name}: expected {expected}, got {getattr(self, name)!r}")

    # ------------------------------------------------------------------ to be provided
    @property
    def predictor(self) -> Predictor:
        raise NotImplementedError

    @property
    def theta_prior_std(self) -> float:
        """Std of the isotropic Gaussian prior on the predictor's theta (for MAP references)."""
        return self.prior_std

    def default_splits(self) -> dict[str, dict[str, Any]]:
        return {"id": {}, "ood_input_scale": {"input_scale": 3.0 * self.input_scale},
                "ood_prior": {"prior_std": 2.0 * self.prior_std}}

    def _labels(self, f: Tensor, gen: torch.Generator) -> Tensor:
        """Draw observations from the noiseless output f."""
        raise NotImplementedError

    def _truth(self, f: Tensor) -> Tensor:
        return f

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """Per-task mean loss ``[T]`` of predictions ``[T, M, O]`` against targets (differentiable)."""
        raise NotImplementedError

    def nll_sum(self, pred: Tensor, y: Tensor) -> Tensor:
        """Per-task negative log-likelihood summed over points ``[T]`` (the MAP objective's data term)."""
        raise NotImplementedError

    def metrics(self, pred: Tensor, y: Tensor, f: Tensor) -> dict[str, Tensor]:
        """Per-task metrics ``{name: [T]}`` at valid points."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared
    @property
    def in_dim(self) -> int:
        return self.dim

    @property
    def out_dim(self) -> int:
        """1 for regression, the number of classes for classification."""
        raise NotImplementedError

    def variant(self, **overrides: Any) -> "TaskFamily":
        """The same family with some params changed (how out-of-distribution splits are made)."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(f"{self.kind}: unknown parameter(s) {unknown}; expected some of {sorted(names)}")
        return dataclasses.replace(self, **overrides)

    def params(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    def bank_variant(self) -> "TaskFamily":
        """The family the fixed evaluation banks (``iai generate``) draw their tasks from: the family
        itself, unless its tasks come from a finite pool of data that it partitions (image
        classification: the images held out of meta-training, which every other sampler draws from)."""
        return self

    def sample_inputs(self, n_tasks: int, n_points: int, gen: torch.Generator) -> Tensor:
        shape = (n_tasks, n_points, self.dim)
        if self.input_dist == "gaussian":
            x = torch.randn(shape, generator=gen)
        else:  # uniform with unit variance
            x = (2 * torch.rand(shape, generator=gen) - 1) * math.sqrt(3.0)
        return self.input_scale * x

    def sample(self, n_tasks: int, n_train: int, n_valid: int, seed: int | torch.Generator) -> TaskBatch:
        """Draw ``n_tasks`` tasks, each with its own teacher, train points and valid points (CPU)."""
        for name, value in (("n_tasks", n_tasks), ("n_train", n_train), ("n_valid", n_valid)):
            if not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"{name}: expected an integer >= 1, got {value!r}")
        gen = seed if isinstance(seed, torch.Generator) else generator(seed)
        theta = sample_theta(self.predictor, n_tasks, self.theta_prior_std, gen)
        x = self.sample_inputs(n_tasks, n_train + n_valid, gen)
        f = self.predictor(x, theta)
        y = self._labels(f, gen)
        truth = self._truth(f)
        return TaskBatch(x_train=x[:, :n_train], y_train=y[:, :n_train], x_valid=x[:, n_train:],
                         y_valid=y[:, n_train:], f_valid=truth[:, n_train:], theta=theta)


@dataclass(frozen=True)
class MLPTeacher(TaskFamily):
    """A random one-hidden-layer tanh MLP teacher (weights ~ N(0, prior_std^2)); its known predictor
    is that MLP, one state token per hidden unit. Mixed into a regression or classification family."""

    hidden: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check("hidden", _is_int(self.hidden, 1), "an integer >= 1")

    @property
    def predictor(self) -> MLPPredictor:
        return MLPPredictor(self.dim, self.hidden, self.out_dim)


@dataclass(frozen=True)
class RegressionFamily(TaskFamily):
    """y = f(x, theta) + eps, eps ~ N(0, noise_std^2); squared loss."""

    task_type: ClassVar[str] = "regression"
    metric_names: ClassVar[tuple[str, ...]] = ("mse", "excess_risk")
    primary_metric: ClassVar[str] = "excess_risk"

    noise_std: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check("noise_std", _is_num(self.noise_std, 0), "a number >= 0")

    @property
    def out_dim(self) -> int:
        return 1

    def default_splits(self) -> dict[str, dict[str, Any]]:
        return {**super().default_splits(), "ood_noise": {"noise_std": 2.0 * self.noise_std}}

    def _labels(self, f: Tensor, gen: torch.Generator) -> Tensor:
        return f + self.noise_std * torch.randn(f.shape, generator=gen)

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        return (pred - y).pow(2).sum(-1).mean(-1)

    def nll_sum(self, pred: Tensor, y: Tensor) -> Tensor:
        return (pred - y).pow(2).sum((-1, -2)) / (2 * self.noise_std**2)

    def metrics(self, pred: Tensor, y: Tensor, f: Tensor) -> dict[str, Tensor]:
        # excess risk = E (pred - f)^2 = MSE - noise variance, measured against the noiseless f
        # because that has far less variance than subtracting sigma^2 from the MSE
        return {"mse": self.loss(pred, y), "excess_risk": self.loss(pred, f)}


@dataclass(frozen=True)
class ClassificationFamily(TaskFamily):
    """y ~ Categorical(softmax(f(x, theta))); f outputs logits; cross-entropy loss.

    The teacher's weights are N(0, prior_std^2) divided by ``temperature``, so theta's prior std
    is ``prior_std / temperature``.
    """

    task_type: ClassVar[str] = "classification"
    metric_names: ClassVar[tuple[str, ...]] = ("error_rate", "nll")
    primary_metric: ClassVar[str] = "error_rate"

    n_classes: int = 4
    temperature: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check("n_classes", _is_int(self.n_classes, 2), "an integer >= 2")
        self._check("temperature", _is_num(self.temperature, 0, strict=True), "a number > 0")

    @property
    def out_dim(self) -> int:
        return self.n_classes

    @property
    def theta_prior_std(self) -> float:
        return self.prior_std / self.temperature

    def _labels(self, f: Tensor, gen: torch.Generator) -> Tensor:
        probs = f.softmax(-1).reshape(-1, self.n_classes)
        labels = torch.multinomial(probs, 1, generator=gen).reshape(f.shape[:-1])
        return F.one_hot(labels, self.n_classes).to(f.dtype)

    def _truth(self, f: Tensor) -> Tensor:
        return f.softmax(-1)

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        return -(y * pred.log_softmax(-1)).sum(-1).mean(-1)

    def nll_sum(self, pred: Tensor, y: Tensor) -> Tensor:
        return -(y * pred.log_softmax(-1)).sum((-1, -2))

    def metrics(self, pred: Tensor, y: Tensor, f: Tensor) -> dict[str, Tensor]:
        wrong = (pred.argmax(-1) != y.argmax(-1)).to(pred.dtype)
        return {"error_rate": wrong.mean(-1), "nll": self.loss(pred, y)}
