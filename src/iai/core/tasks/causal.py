"""Topological order of structural causal models (implicit regime only; docs/paper.md sections 4 and 7).

A task is a random structural causal model (SCM) over ``dim`` = p variables: an Erdos-Renyi DAG,
a mechanism per variable, additive noise. Its data are i.i.d. samples of all p variables; a
learner reads them and outputs a *score per variable*; sorting the scores (ascending, ties broken
by variable index) is its predicted topological order: causes first.

Every choice below is ours (the paper does not state its simulator):

- **Graph**: the variables are drawn in a canonical order 0..p-1 and each pair i < j gets the edge
  i -> j independently with probability ``min(1, 2 * edges_per_node / (p - 1))``, so a graph has
  ``edges_per_node * p`` edges on average whatever its size (ER-k in the causal-discovery
  literature). A graph that came out empty gets one edge between a random pair, so the edge metric
  is always defined. Last, the variables are shuffled per task, so that the canonical order tells
  nothing.
- **Mechanisms** (``mechanism``): ``linear``: x_j = sum_i w_ij x_i + e_j with weights
  w_ij = +-U(weight_low, weight_high); ``nonlinear``: x_j = sum_h v_jh tanh(sum_i u_jih x_i + c_jh)
  / sqrt(hidden) + e_j, a random one-hidden-layer tanh MLP of the parents per variable, with
  u = +-U(weight_low, weight_high) on the parent edges (0 elsewhere), c ~ N(0, 1) and
  v ~ N(0, weight_high^2) (a variable without parents gets a constant offset plus noise).
- **Noise** (``noise_dist``, ``noise_std``): gaussian, uniform or laplace, the same std for every
  variable (the equal-variance case, in which the regression-based sink search is consistent for
  linear mechanisms).
- ``standardize``: each variable of a task is centred and scaled to unit variance with the mean and
  std of the task's own train samples. Raw SCM data are *varsortable* (marginal variance tends to
  grow along the order, so sorting by variance recovers much of it: Reisach et al., 2021);
  standardizing removes that artefact. ``input_scale`` multiplies all data after that.

Encoding in a :class:`~iai.core.tasks.base.TaskBatch` (ours):

- ``x_train [T, N, p]``: the samples; ``y_train [T, N, 0]`` (nothing to predict per sample).
- the valid points are the p *variables* (``n_valid`` is ignored): ``x_valid [T, p, 1]`` holds the
  variable's index (query j is column j of the samples); ``y_valid = f_valid [T, p, p]`` holds the
  parents of each variable, ``y[t, j, i] = 1`` for an edge i -> j; ``theta [T, p, p]`` is the
  weighted adjacency (``theta[t, i, j]`` for i -> j; the edge weight, 1 for nonlinear mechanisms).
- a prediction is ``[T, p, 1]``: the score of each variable (lower = earlier).

Loss (for meta-training): the mean over the task's edges i -> j of softplus(s_i - s_j), a pairwise
logistic ranking loss that is low when every cause scores below its effects (ours).

Metrics: ``edge_accuracy``, the fraction of the true edges that the predicted order orients
correctly (1 for any valid order, 0.5 in expectation for a uniformly random order), and
``valid_order``, 1 when the predicted order is a topological order of the true graph (its expected
value for a random order is the number of topological orders / p!). Both are higher-is-better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from iai.core.tasks.base import TaskBatch, TaskFamily, _is_int, _is_num
from iai.utils import ConfigError, generator

MECHANISMS = ("linear", "nonlinear")
NOISE_DISTS = ("gaussian", "uniform", "laplace")


def order_ranks(scores: Tensor) -> Tensor:
    """Position of each variable in the order given by sorting ``scores [..., p]`` ascending (ties
    broken by variable index): ``ranks[..., j]`` in 0..p-1."""
    order = torch.argsort(scores, dim=-1, stable=True)
    return torch.argsort(order, dim=-1, stable=True)


def order_metrics(scores: Tensor, parents: Tensor) -> dict[str, Tensor]:
    """``edge_accuracy`` and ``valid_order`` per task ``[T]`` of scores ``[T, p]`` against the parent
    indicators ``parents [T, p, p]`` (``parents[t, j, i] = 1`` for an edge i -> j)."""
    rank = order_ranks(scores).to(parents.dtype)
    # edge i -> j is oriented correctly when rank_i < rank_j
    right = (rank.unsqueeze(-1) > rank.unsqueeze(-2)).to(parents.dtype)  # [T, j, i]: rank_j > rank_i
    n_edges = parents.sum((-1, -2))
    good = (parents * right).sum((-1, -2))
    acc = good / n_edges.clamp_min(1)
    acc = torch.where(n_edges > 0, acc, torch.ones_like(acc))  # no edges: every order is valid
    return {"edge_accuracy": acc, "valid_order": (good == n_edges).to(parents.dtype)}


@dataclass(frozen=True)
class CausalOrderTasks(TaskFamily):
    """Random SCMs over ``dim`` variables; predict a topological order (see the module docstring).

    ``prior_std`` and ``input_dist`` are not used (inherited from :class:`TaskFamily`).
    """

    kind: ClassVar[str] = "causal_order"
    task_type: ClassVar[str] = "order"
    metric_names: ClassVar[tuple[str, ...]] = ("edge_accuracy", "valid_order")
    primary_metric: ClassVar[str] = "edge_accuracy"

    dim: int = 5
    edges_per_node: float = 1.0
    mechanism: str = "linear"
    noise_std: float = 1.0
    noise_dist: str = "gaussian"
    weight_low: float = 0.5
    weight_high: float = 2.0
    hidden: int = 8
    standardize: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check("dim", _is_int(self.dim, 2), "an integer >= 2 (the number of variables)")
        self._check("edges_per_node", _is_num(self.edges_per_node, 0, strict=True), "a number > 0")
        self._check("mechanism", self.mechanism in MECHANISMS, f"one of {list(MECHANISMS)}")
        self._check("noise_std", _is_num(self.noise_std, 0, strict=True), "a number > 0")
        self._check("noise_dist", self.noise_dist in NOISE_DISTS, f"one of {list(NOISE_DISTS)}")
        self._check("weight_low", _is_num(self.weight_low, 0), "a number >= 0")
        self._check("weight_high", _is_num(self.weight_high, 0, strict=True) and self.weight_high >= self.weight_low,
                    f"a number > 0 and >= weight_low = {self.weight_low}")
        self._check("hidden", _is_int(self.hidden, 1), "an integer >= 1")
        self._check("standardize", isinstance(self.standardize, bool), "true or false")

    # ------------------------------------------------------------------ what a learner needs to know
    @property
    def predictor(self):
        raise ConfigError(f"{self.kind}: there is no known predictor f(x, theta); only the implicit regime "
                          f"(and the order references) apply")

    def structure(self) -> tuple:
        """What a trained learner's shapes depend on: nothing (it runs on graphs of any size)."""
        return ()

    @property
    def in_dim(self) -> int:
        return 1

    @property
    def out_dim(self) -> int:
        return 1

    @property
    def edge_prob(self) -> float:
        return min(1.0, 2.0 * self.edges_per_node / (self.dim - 1))

    def default_splits(self) -> dict[str, dict[str, Any]]:
        other = "nonlinear" if self.mechanism == "linear" else "linear"
        return {"id": {}, "ood_larger": {"dim": 2 * self.dim},
                "ood_denser": {"edges_per_node": 2.0 * self.edges_per_node},
                "ood_mechanism": {"mechanism": other}}

    # ------------------------------------------------------------------ sampling
    def sample_graphs(self, n_tasks: int, gen: torch.Generator) -> Tensor:
        """Adjacency ``[T, p, p]`` in the canonical order (``a[t, i, j] = 1`` for i -> j, only i < j),
        with at least one edge per graph."""
        p = self.dim
        upper = torch.ones(p, p).triu(1)
        adj = (torch.rand(n_tasks, p, p, generator=gen) < self.edge_prob).float() * upper
        pair = torch.rand(n_tasks, p, p, generator=gen).mul(upper).flatten(1).argmax(-1)  # a random pair i < j
        extra = F.one_hot(pair, p * p).view(n_tasks, p, p).float()
        empty = (adj.sum((-1, -2)) == 0).view(-1, 1, 1)
        return torch.where(empty, extra, adj)

    def _weights(self, shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
        mag = self.weight_low + (self.weight_high - self.weight_low) * torch.rand(shape, generator=gen)
        sign = torch.randint(0, 2, shape, generator=gen).float() * 2 - 1
        return mag * sign

    def _noise(self, shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
        if self.noise_dist == "gaussian":
            e = torch.randn(shape, generator=gen)
        elif self.noise_dist == "uniform":
            e = (2 * torch.rand(shape, generator=gen) - 1) * math.sqrt(3.0)
        else:  # laplace with unit variance: scale 1/sqrt(2), by inverse CDF
            u = torch.rand(shape, generator=gen).clamp(1e-7, 1 - 1e-7) - 0.5
            e = -torch.sign(u) * torch.log1p(-2 * u.abs()) / math.sqrt(2.0)
        return self.noise_std * e

    def sample(self, n_tasks: int, n_train: int, n_valid: int, seed: int | torch.Generator) -> TaskBatch:
        """Draw ``n_tasks`` SCMs and ``n_train`` samples of each (CPU); ``n_valid`` is ignored (the
        valid points are the p variables), but checked like every family's."""
        for name, value in (("n_tasks", n_tasks), ("n_train", n_train), ("n_valid", n_valid)):
            if not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"{name}: expected an integer >= 1, got {value!r}")
        gen = seed if isinstance(seed, torch.Generator) else generator(seed)
        t, n, p, h = n_tasks, n_train, self.dim, self.hidden
        adj = self.sample_graphs(t, gen)
        noise = self._noise((t, n, p), gen)
        x = torch.zeros(t, n, p)
        if self.mechanism == "linear":
            w = adj * self._weights((t, p, p), gen)
            for j in range(p):  # ancestral sampling in the canonical order
                x[:, :, j] = torch.einsum("tni,ti->tn", x, w[:, :, j]) + noise[:, :, j]
        else:
            w = adj
            u = adj.unsqueeze(-1) * self._weights((t, p, p, h), gen)  # [T, i, j, H]
            c = torch.randn(t, p, h, generator=gen)
            v = self.weight_high * torch.randn(t, p, h, generator=gen)
            for j in range(p):
                pre = torch.einsum("tni,tih->tnh", x, u[:, :, j]) + c[:, j].unsqueeze(1)
                x[:, :, j] = torch.einsum("tnh,th->tn", torch.tanh(pre), v[:, j]) / math.sqrt(h) + noise[:, :, j]
        # shuffle the variables per task: column k of the data is canonical variable perm[k]
        perm = torch.rand(t, p, generator=gen).argsort(-1)
        x = x.gather(2, perm.unsqueeze(1).expand(t, n, p))
        rows = perm.unsqueeze(-1).expand(t, p, p)
        w = w.gather(1, rows).gather(2, perm.unsqueeze(1).expand(t, p, p))  # w'[k, l] = w[perm k, perm l]
        a = (w != 0).float()
        if self.standardize:
            x = (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True).clamp_min(1e-8)
        if self.input_scale != 1:
            x = self.input_scale * x
        parents = a.transpose(1, 2).contiguous()  # [T, j, i] = 1 for i -> j
        index = torch.arange(p, dtype=x.dtype).view(1, p, 1).expand(t, p, 1).contiguous()
        return TaskBatch(x_train=x, y_train=x.new_zeros(t, n, 0), x_valid=index, y_valid=parents,
                         f_valid=parents.clone(), theta=w)

    # ------------------------------------------------------------------ loss and metrics
    def _check_pred(self, pred: Tensor, y: Tensor) -> Tensor:
        if pred.shape[:-1] != y.shape[:-1] or pred.shape[-1] != 1:
            raise ConfigError(f"{self.kind}: expected a score per variable [T, {y.shape[1]}, 1], "
                              f"got {tuple(pred.shape)}")
        return pred[..., 0]

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        s = self._check_pred(pred, y)
        diff = s.unsqueeze(-1) - s.unsqueeze(-2)  # [T, j, i] = s_j - s_i; want s_i < s_j on edges
        pair = F.softplus(-diff)
        return (y * pair).sum((-1, -2)) / y.sum((-1, -2)).clamp_min(1)

    def nll_sum(self, pred: Tensor, y: Tensor) -> Tensor:
        raise ConfigError(f"{self.kind}: no likelihood over observations (the MAP reference does not apply)")

    def metrics(self, pred: Tensor, y: Tensor, f: Tensor) -> dict[str, Tensor]:
        return order_metrics(self._check_pred(pred, y), y)
