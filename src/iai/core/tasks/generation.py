"""In-context generation by flow matching (implicit regime only; docs/paper.md sections 4 and 7).

A task is a distribution p_T over R^d. Its train points are samples of p_T; a learner reads them
and provides a velocity field v(x, t | samples). Training uses the conditional flow-matching
(CFM) loss ``E |v(x_t, t) - (x_1 - x_0)|^2`` with ``x_t = (1 - t) x_0 + t x_1``, ``x_0 ~ N(0, I)``,
``x_1 ~ p_T``, ``t ~ U(0, 1)``; generation integrates dx/dt = v from t = 0 to 1 from noise with
``euler_steps`` Euler steps of equal size (t = 0, 1/S, ..., (S-1)/S).

Families (every option a choice of ours):

- :class:`MixtureGenerationTasks` (``mixture_generation``): a mixture of ``n_components`` isotropic
  Gaussians in ``dim`` dimensions (2 by default), weights ~ Dirichlet(1, ..., 1), means ~
  N(0, mean_std^2 I), per-component std ~ U(scale_min, scale_max).
- :class:`ImageGenerationTasks` (``image_generation``): a task is one class of an image set (by
  default scikit-learn's bundled 8x8 digits, no download); its distribution is the class's images,
  preprocessed as in :mod:`iai.core.tasks.images` (standardized, optionally projected to ``dim``
  dimensions by a fixed random projection). ``held_out_classes`` are never a training class; the
  ``ood_classes`` split draws only from them. ``rotate`` turns every image (a dataset shift).

Encoding in a :class:`~iai.core.tasks.base.TaskBatch` (ours), d = ``dim``:

- ``x_train [T, N, d]``: samples of the task; ``y_train [T, N, 0]``.
- each valid point is a CFM query and a generation seed at once: ``x_valid [T, M, 2d + 1]`` =
  (x_t, t, x_0), with x_t built from x_0 and a fresh sample x_1 of the task (not among the train
  points); ``y_valid [T, M, 2d]`` = (x_1 - x_0, x_1).
- a learner predicts ``[T, M, 2d]`` = (v(x_t, t), the sample it generates from the noise x_0). A
  learned flow learner in training mode leaves the second half NaN (the loss does not read it).
- ``f_valid [T, M, d + P]``: the noiseless truth at the query, i.e. the exact marginal velocity
  u(x_t, t) = E[x_1 - x_0 | x_t] of the task (mixtures: closed form, :func:`mixture_velocity`;
  images: x_1 - x_0, none being known), then the task's mixture parameters (P = K (d + 2), the
  same on every row; P = 0 for images). ``train.target: noiseless`` thus trains on the marginal
  field itself. ``theta [T, K, d + 2]`` = (weight, mean, std) per component (images: empty).

Metrics (all lower-is-better):

- ``mmd``: the squared maximum mean discrepancy between the M generated samples and the M fresh
  task samples x_1 of the valid points, unbiased (U-statistic) estimate, Gaussian kernel
  k(a, b) = exp(-|a - b|^2 / (2 h^2)) with h = ``mmd_bandwidth``. Its expectation is 0 for samples
  of the task's own distribution (a single value may be negative): the ``true_samples`` reference
  measures that floor and its noise. (The biased V-statistic would reward under-dispersed samples:
  its bias shrinks as the generated samples concentrate.) Needs ``n_valid >= 2``.
- ``sample_nll`` (mixtures): -mean log p_T(generated sample), the exact negative log-likelihood of
  the generated samples under the task's true mixture, in nats per sample (for samples of p_T
  itself its expectation is the entropy of p_T).
- ``cfm_loss``: the CFM loss at the valid queries (what training minimizes; its minimum, reached by
  the exact marginal field, is not 0 unless p_T is a point mass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from iai.core.tasks.base import TaskBatch, TaskFamily, _is_int, _is_num
from iai.core.tasks.images import SOURCES, build_pool, load_source, resolve_source
from iai.utils import ConfigError, generator

# ---------------------------------------------------------------------------- closed forms


def mmd2(a: Tensor, b: Tensor, bandwidth: float) -> Tensor:
    """Unbiased squared MMD per task ``[T]`` between samples ``a [T, M, d]`` and ``b [T, M', d]``
    (M, M' >= 2), Gaussian kernel of std ``bandwidth``: the U-statistic, whose expectation is the
    population MMD^2 (0 for two samples of one distribution; a single estimate may be negative)."""
    a, b = a.double(), b.double()

    def k(u: Tensor, v: Tensor) -> Tensor:
        return torch.exp(-torch.cdist(u, v).pow(2) / (2 * bandwidth**2))

    def within(u: Tensor) -> Tensor:  # mean over pairs i != j
        m = u.shape[1]
        return (k(u, u).sum((-1, -2)) - m) / (m * (m - 1))

    return within(a) + within(b) - 2 * k(a, b).mean((-1, -2))


def split_theta(theta: Tensor, dim: int) -> tuple[Tensor, Tensor, Tensor]:
    """Mixture parameters ``[T, K, d + 2]`` -> weights ``[T, K]``, means ``[T, K, d]``, stds ``[T, K]``."""
    return theta[..., 0], theta[..., 1:1 + dim], theta[..., 1 + dim]


def mixture_log_prob(x: Tensor, theta: Tensor) -> Tensor:
    """log p(x) ``[T, M]`` of points ``x [T, M, d]`` under isotropic Gaussian mixtures ``theta``."""
    d = x.shape[-1]
    w, mu, s = split_theta(theta.double(), d)
    x = x.double()
    sq = (x.unsqueeze(2) - mu.unsqueeze(1)).pow(2).sum(-1)  # [T, M, K]
    s2 = s.pow(2).unsqueeze(1)
    logn = -sq / (2 * s2) - 0.5 * d * torch.log(2 * math.pi * s2)
    return torch.logsumexp(w.clamp_min(1e-300).log().unsqueeze(1) + logn, -1)


def mixture_velocity(x: Tensor, t: Tensor, theta: Tensor) -> Tensor:
    """The exact marginal velocity u(x, t) = E[x_1 - x_0 | x_t = x] ``[T, M, d]`` of the linear path
    from N(0, I) to an isotropic Gaussian mixture (``t [T, M, 1]`` in [0, 1)).

    Per component k (weight pi, mean mu, std s): x_t | k ~ N(t mu, sigma_t^2 I) with
    sigma_t^2 = (1 - t)^2 + t^2 s^2, and E[x_1 - x_0 | x_t, k] = mu + (t s^2 - (1 - t)) / sigma_t^2
    (x_t - t mu); u is their average under the posterior weights of the components given x_t.
    A point mass (s = 0) gives u = (mu - x) / (1 - t), whose CFM loss is exactly 0.
    """
    d, dtype = x.shape[-1], x.dtype
    w, mu, s = split_theta(theta.double(), d)
    x, t = x.double(), t.double()
    tk = t.unsqueeze(-1)  # [T, M, 1, 1]
    s2 = s.pow(2).view(s.shape[0], 1, -1, 1)  # [T, 1, K, 1]
    var = (1 - tk).pow(2) + tk.pow(2) * s2  # [T, M, K, 1]
    diff = x.unsqueeze(2) - tk * mu.unsqueeze(1)  # [T, M, K, d]
    logits = w.clamp_min(1e-300).log().unsqueeze(1) - diff.pow(2).sum(-1) / (2 * var[..., 0]) \
        - 0.5 * d * var[..., 0].log()
    post = logits.softmax(-1).unsqueeze(-1)  # [T, M, K, 1]
    cond = mu.unsqueeze(1) + (tk * s2 - (1 - tk)) / var * diff
    return (post * cond).sum(2).to(dtype)


def empirical_velocity(x: Tensor, t: Tensor, points: Tensor) -> Tensor:
    """The exact marginal velocity ``[T, M, d]`` toward the empirical distribution of ``points
    [T, n, d]`` (a mixture of point masses): sum_k w_k(x, t) (a_k - x) / (1 - t) with
    w_k ∝ exp(-|x - t a_k|^2 / (2 (1 - t)^2))."""
    one_minus = (1 - t).clamp_min(1e-6)  # [T, M, 1]
    diff = x.unsqueeze(2) - t.unsqueeze(-1) * points.unsqueeze(1)  # [T, M, n, d]
    post = (-diff.pow(2).sum(-1) / (2 * one_minus.pow(2))).softmax(-1)  # [T, M, n]
    mean = torch.einsum("tmn,tnd->tmd", post, points)
    return (mean - x) / one_minus


def euler_generate(velocity, x0: Tensor, steps: int) -> Tensor:
    """Integrate dx/dt = velocity(x, t) from t = 0 to 1 in ``steps`` equal Euler steps;
    ``velocity(x [T, M, d], t [T, M, 1])``."""
    x, dt = x0, 1.0 / steps
    for i in range(steps):
        t = torch.full_like(x[..., :1], i * dt)
        x = x + dt * velocity(x, t)
    return x


# ---------------------------------------------------------------------------- families


@dataclass(frozen=True)
class GenerationFamily(TaskFamily):
    """What both generation families share: the query layout, the CFM loss and the metrics.

    ``prior_std`` and ``input_dist`` are not used (inherited from :class:`TaskFamily`).
    """

    task_type: ClassVar[str] = "generation"
    metric_names: ClassVar[tuple[str, ...]] = ("mmd", "cfm_loss")
    primary_metric: ClassVar[str] = "mmd"

    euler_steps: int = 16
    mmd_bandwidth: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check("euler_steps", _is_int(self.euler_steps, 1), "an integer >= 1")
        self._check("mmd_bandwidth", _is_num(self.mmd_bandwidth, 0, strict=True), "a number > 0")

    @property
    def predictor(self):
        raise ConfigError(f"{self.kind}: there is no known predictor f(x, theta); only the implicit regime "
                          f"(and the true_samples reference) apply")

    def structure(self) -> tuple:
        """What a trained learner's shapes depend on: the dimension it generates in."""
        return (self.dim,)

    @property
    def in_dim(self) -> int:
        return 2 * self.dim + 1

    @property
    def out_dim(self) -> int:
        return 2 * self.dim

    def split_query(self, x_query: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(x_t, t, x_0) of queries ``[T, M, 2d + 1]``."""
        d = self.dim
        if x_query.shape[-1] != 2 * d + 1:
            raise ConfigError(f"{self.kind}: queries of width {x_query.shape[-1]}, expected 2 * dim + 1 = {2 * d + 1}")
        return x_query[..., :d], x_query[..., d:d + 1], x_query[..., d + 1:]

    def _draw(self, n_tasks: int, n_train: int, n_valid: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """Task samples ``[T, N + M, d]`` (valid points first), theta, and the exact field function's
        argument (theta, or None where the field is not known)."""
        raise NotImplementedError

    def _exact_velocity(self, x: Tensor, t: Tensor, theta: Tensor) -> Tensor | None:
        return None

    def sample(self, n_tasks: int, n_train: int, n_valid: int, seed: int | torch.Generator) -> TaskBatch:
        """Draw ``n_tasks`` distributions, ``n_train`` samples of each, and ``n_valid`` CFM queries (CPU)."""
        for name, value in (("n_tasks", n_tasks), ("n_train", n_train), ("n_valid", n_valid)):
            if not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"{name}: expected an integer >= 1, got {value!r}")
        if n_valid < 2:
            raise ConfigError(f"n_valid: expected an integer >= 2 for {self.kind} (the MMD compares two samples "
                              f"of the valid points), got {n_valid}")
        gen = seed if isinstance(seed, torch.Generator) else generator(seed)
        x, theta, params = self._draw(n_tasks, n_train, n_valid, gen)
        x = self.input_scale * x if self.input_scale != 1 else x
        x1, train = x[:, :n_valid], x[:, n_valid:]
        x0 = torch.randn(x1.shape, generator=gen)
        t = torch.rand(n_tasks, n_valid, 1, generator=gen)
        xt = (1 - t) * x0 + t * x1
        u = self._exact_velocity(xt, t, theta)
        u = (x1 - x0) if u is None else u
        f = torch.cat([u, params.unsqueeze(1).expand(-1, n_valid, -1)], -1)
        return TaskBatch(x_train=train.contiguous(), y_train=x.new_zeros(n_tasks, n_train, 0),
                         x_valid=torch.cat([xt, t, x0], -1), y_valid=torch.cat([x1 - x0, x1], -1),
                         f_valid=f, theta=theta)

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """The CFM loss per task: mean over queries of |v - target|^2 (summed over the d coordinates)."""
        d = self.dim
        return (pred[..., :d] - y[..., :d]).pow(2).sum(-1).mean(-1)

    def nll_sum(self, pred: Tensor, y: Tensor) -> Tensor:
        raise ConfigError(f"{self.kind}: no likelihood over observations (the MAP reference does not apply)")

    def metrics(self, pred: Tensor, y: Tensor, f: Tensor) -> dict[str, Tensor]:
        d = self.dim
        generated, truth = pred[..., d:2 * d], y[..., d:2 * d]
        return {"mmd": mmd2(generated, truth, self.mmd_bandwidth).to(pred.dtype), "cfm_loss": self.loss(pred, y)}


@dataclass(frozen=True)
class MixtureGenerationTasks(GenerationFamily):
    """Isotropic Gaussian mixtures with random weights, means and stds (module docstring)."""

    kind: ClassVar[str] = "mixture_generation"
    metric_names: ClassVar[tuple[str, ...]] = ("mmd", "sample_nll", "cfm_loss")

    dim: int = 2
    n_components: int = 3
    mean_std: float = 2.0
    scale_min: float = 0.2
    scale_max: float = 0.6

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check("n_components", _is_int(self.n_components, 1), "an integer >= 1")
        self._check("mean_std", _is_num(self.mean_std, 0), "a number >= 0")
        self._check("scale_min", _is_num(self.scale_min, 0), "a number >= 0")
        self._check("scale_max", _is_num(self.scale_max, 0, strict=True) and self.scale_max >= self.scale_min,
                    f"a number > 0 and >= scale_min = {self.scale_min}")

    def default_splits(self) -> dict[str, dict[str, Any]]:
        return {"id": {}, "ood_components": {"n_components": 2 * self.n_components},
                "ood_spread": {"mean_std": 1.5 * self.mean_std}}

    def sample_theta(self, n_tasks: int, gen: torch.Generator) -> Tensor:
        """Mixture parameters ``[T, K, d + 2]``: (weight, mean, std) per component."""
        k, d = self.n_components, self.dim
        w = -torch.rand(n_tasks, k, generator=gen).clamp_min(1e-12).log()  # Exp(1) draws -> Dirichlet(1)
        w = w / w.sum(-1, keepdim=True)
        mu = self.mean_std * torch.randn(n_tasks, k, d, generator=gen)
        s = self.scale_min + (self.scale_max - self.scale_min) * torch.rand(n_tasks, k, generator=gen)
        return torch.cat([w.unsqueeze(-1), mu, s.unsqueeze(-1)], -1)

    @staticmethod
    def sample_mixture(theta: Tensor, n: int, gen: torch.Generator) -> Tensor:
        """``n`` samples ``[T, n, d]`` of each task's mixture ``theta``."""
        d = theta.shape[-1] - 2
        w, mu, s = split_theta(theta, d)
        comp = torch.multinomial(w, n, replacement=True, generator=gen)  # [T, n]
        centre = mu.gather(1, comp.unsqueeze(-1).expand(-1, -1, d))
        return centre + s.gather(1, comp).unsqueeze(-1) * torch.randn(centre.shape, generator=gen)

    def _draw(self, n_tasks, n_train, n_valid, gen):
        theta = self.sample_theta(n_tasks, gen)
        x = self.sample_mixture(theta, n_valid + n_train, gen)
        if self.input_scale != 1:  # sample() scales the data; the truth follows: means and stds too
            theta = torch.cat([theta[..., :1], self.input_scale * theta[..., 1:]], -1)
        return x, theta, theta.flatten(1)

    def _exact_velocity(self, x, t, theta):
        return mixture_velocity(x, t, theta)

    def metrics(self, pred: Tensor, y: Tensor, f: Tensor) -> dict[str, Tensor]:
        out = super().metrics(pred, y, f)
        d, k = self.dim, f.shape[-1] - self.dim
        theta = f[:, 0, d:].reshape(f.shape[0], k // (d + 2), d + 2)
        out["sample_nll"] = -mixture_log_prob(pred[..., d:2 * d], theta).mean(-1).to(pred.dtype)
        return {name: out[name] for name in self.metric_names}


@dataclass(frozen=True)
class ImageGenerationTasks(GenerationFamily):
    """A task is one class of an image set; generate its images (module docstring).

    ``dim: 0`` means no projection (the native number of features, 64 for digits), resolved when
    the family is built; ``mmd_bandwidth: 0`` means sqrt(dim), also resolved then (the inputs are
    standardized, so sqrt(dim) is the scale of the distance between two images).
    """

    kind: ClassVar[str] = "image_generation"

    dim: int = 4
    mmd_bandwidth: float = 0.0
    source: str = "digits"
    path: str = ""
    downscale: int = 1
    projection_seed: int = 0
    held_out_classes: tuple[int, ...] = ()
    novel_classes: bool = False
    rotate: float = 0.0

    def __post_init__(self) -> None:
        self._check("source", self.source in SOURCES, f"one of {list(SOURCES)}")
        self._check("path", isinstance(self.path, str),
                    "a string (a folder for mnist/fashion_mnist, an .npz file for embeddings)")
        if self.source != "digits" and not self.path:
            raise ConfigError(f"{self.kind}.path: expected a file or folder for source {self.source!r}, got none")
        self._check("dim", _is_int(self.dim, 0), "an integer >= 0 (0 = the native number of features)")
        self._check("downscale", _is_int(self.downscale, 1), "an integer >= 1")
        self._check("projection_seed", _is_int(self.projection_seed, 0), "an integer >= 0")
        self._check("rotate", _is_num(self.rotate, -360) and self.rotate <= 360, "degrees in -360..360")
        self._check("novel_classes", isinstance(self.novel_classes, bool), "true or false")
        raw, labels = resolve_source(self)
        held = self.held_out_classes
        if isinstance(self.mmd_bandwidth, (int, float)) and not isinstance(self.mmd_bandwidth, bool) \
                and self.mmd_bandwidth == 0:
            object.__setattr__(self, "mmd_bandwidth", math.sqrt(self.dim))
        super().__post_init__()
        classes = set(np.unique(labels).tolist())
        unknown = sorted(set(held) - classes)
        self._check("held_out_classes", not unknown and len(held) < len(classes),
                    f"classes of the {self.source} data (it has {sorted(classes)}), leaving at least one seen")
        self._check("novel_classes", not self.novel_classes or held, "false when held_out_classes is empty")

    @property
    def _path_key(self) -> str:
        return "" if self.source == "digits" else str(Path(self.path).expanduser().resolve())

    def default_splits(self) -> dict[str, dict[str, Any]]:
        raw, _ = load_source(self.source, self._path_key)
        splits: dict[str, dict[str, Any]] = {"id": {}}
        if self.held_out_classes:
            splits["ood_classes"] = {"novel_classes": True}
        if raw.ndim == 3:
            splits["ood_shift"] = {"rotate": 45.0}
        return splits

    def _draw(self, n_tasks, n_train, n_valid, gen):
        pool = build_pool(self.source, self._path_key, self.downscale, float(self.rotate), 0.0, self.dim,
                          self.projection_seed)
        held = np.isin(pool.classes, self.held_out_classes)
        candidates = torch.from_numpy(np.flatnonzero(held if self.novel_classes else ~held))
        cls = candidates[torch.randint(len(candidates), (n_tasks,), generator=gen)]  # [T] one class per task
        count = pool.counts[cls]  # [T]
        width = pool.table.shape[1]
        keys = torch.rand(n_tasks, width, generator=gen).masked_fill(torch.arange(width) >= count.unsqueeze(-1), 2.0)
        perm = keys.argsort(-1)  # a random order of each task's class images (valid ones 0..count-1)
        n = n_valid + n_train
        j = torch.arange(n).expand(n_tasks, n)
        # valid points: the first M of the order (distinct while M <= count); train points: the rest,
        # cycling through the images not used as valid points (repeats only beyond count - M)
        m = torch.clamp(torch.tensor(n_valid), max=count).unsqueeze(-1)  # [T, 1]
        rest = (count.unsqueeze(-1) - m).clamp_min(1)
        pos = torch.where(j < n_valid, j % count.unsqueeze(-1),
                          torch.where(count.unsqueeze(-1) > m, m + (j - n_valid) % rest,
                                      (j - n_valid) % count.unsqueeze(-1)))
        index = pool.table[cls.unsqueeze(-1), perm.gather(1, pos)]
        x = pool.x[index]
        theta = x.new_zeros(n_tasks, 0, self.dim + 2)
        return x, theta, x.new_zeros(n_tasks, 0)
