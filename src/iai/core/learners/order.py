"""Topological order (:mod:`iai.core.tasks.causal`): the implicit learner and the classical references.

:class:`OrderLearner` (regime ``implicit``) keeps, as its state, the running prediction at each
query, here a *score per variable* (``state: logits``; or a hidden vector per variable read out by
a learned linear map, ``state: hidden``), and refines it over mini-batches of samples:

    s^(0) learned (the same for every variable);  s^(i+1) = s^(i) + gain_i * r_gamma(s^(i), B^(i))

The step network r (ours) must run on graphs of any size p and mini-batches of any size b, and be
equivariant to the order of the variables and invariant to the order of the samples. So it works
on the b x p table of the mini-batch, one token per cell (sample n, variable j), in the manner of
the alternating-attention causal-discovery transformers (AVICI, Lorch et al. 2022):

- cell features: the value standardized per variable within the mini-batch, the log of that
  variable's mini-batch std (so marginal scale is kept, bounded), the variable's current state and
  the step features;
- ``model.depth`` rounds of attention over the samples of each variable, then over the variables
  of each sample (the backbone's pre-norm :class:`~iai.core.learners.backbone.Block`);
- a mean over the samples, one more attention round over the variables, a zero-initialized head:
  the update of each variable's state.

A one-shot twin (``mode: one_shot``) is the same network taking one step over its whole context.

References (no training, the :class:`~iai.core.learners.base.Learner` protocol; all ours):

- :class:`RandomOrderLearner` (``random_order``): a uniformly random order per task.
- :class:`VarSortLearner` (``var_sort``): sort by marginal variance of the samples read so far,
  smallest first (exploits the varsortability of raw simulated SCMs; useless on standardized data).
- :class:`SinkSearchLearner` (``sink_search``): regression-based sink search: repeatedly take the
  remaining variable whose linear regression on all other remaining variables leaves the *largest*
  residual variance (1 / the precision matrix's diagonal) as the last of the remaining, and remove
  it. Consistent for linear SCMs with equal noise variances (Chen, Drton and Wang, 2019); it reads
  only the running covariance, so it is an exact iterative learner (any split of the data gives
  the same answer).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from iai.core.learners.backbone import (
    Block,
    LearnerConfig,
    ModelConfig,
    n_step_features,
    step_features,
    update_gain,
    zero_linear,
)
from iai.core.learners.base import State
from iai.core.learners.learned import LearnedLearner, learner
from iai.core.tasks import CausalOrderTasks, TaskFamily
from iai.utils import ConfigError, generator

_F64 = torch.float64


def _check_queries(x_query: Tensor, x: Tensor) -> None:
    if x_query.shape[1] != x.shape[-1]:
        raise ConfigError(f"order learner: {x_query.shape[1]} queries but samples of {x.shape[-1]} variables; "
                          f"the queries are the variables")


@learner("order", example=("causal_order", {"dim": 4}, {"regime": "implicit"}))
class OrderLearner(LearnedLearner):
    for_families = (CausalOrderTasks,)
    regime = "implicit"

    def __init__(self, name: str, family: TaskFamily, cfg: LearnerConfig, model: ModelConfig,
                 batch_size: int, context_size: int):
        if cfg.state not in ("logits", "hidden"):
            raise ConfigError(f"run.state: the order learner carries a score per variable ('logits') or a hidden "
                              f"vector per variable ('hidden'); got {cfg.state!r}")
        if cfg.history:
            raise ConfigError(f"run.history: the order learner has no history window; expected 0, got {cfg.history}")
        super().__init__(name, family, cfg, model, batch_size, context_size)
        w = model.width
        self.state_dim = w if cfg.state == "hidden" else 1
        self.pred0 = nn.Parameter(torch.zeros(self.state_dim))
        self.readout = nn.Linear(w, 1) if cfg.state == "hidden" else None
        self.embed = nn.Linear(2 + self.state_dim + n_step_features(cfg), w)
        self.over_samples = nn.ModuleList(Block(model) for _ in range(model.depth))
        self.over_variables = nn.ModuleList(Block(model) for _ in range(model.depth))
        self.pooled = Block(model)
        self.norm = nn.LayerNorm(w)
        self.head = zero_linear(w, self.state_dim)

    def init(self, x_query: Tensor) -> State:
        t, p, _ = x_query.shape
        return {"s": self.pred0.to(x_query.dtype).expand(t, p, -1), "x_query": x_query, "n": x_query.new_zeros(t)}

    def step(self, state: State, x: Tensor, y: Tensor) -> State:
        s, n = state["s"], state["n"]  # s [T, p, S]
        _check_queries(state["x_query"], x)
        t, b, p = x.shape
        w = self.model_cfg.width
        mean = x.mean(1, keepdim=True)
        std = x.std(1, unbiased=False, keepdim=True).clamp_min(1e-6)
        cells = [((x - mean) / std).unsqueeze(-1), std.log().expand(t, b, p).unsqueeze(-1),
                 s.unsqueeze(1).expand(t, b, p, -1)]
        sf = step_features(n, b, self.cfg).to(x.dtype)  # [T, F]
        if sf.shape[-1]:
            cells.append(sf.view(t, 1, 1, -1).expand(t, b, p, -1))
        h = self.embed(torch.cat(cells, -1).to(self.embed.weight.dtype))  # [T, b, p, W]
        for over_s, over_v in zip(self.over_samples, self.over_variables):
            h = over_s(h.transpose(1, 2).reshape(t * p, b, w), b).view(t, p, b, w).transpose(1, 2)
            h = over_v(h.reshape(t * b, p, w), p).view(t, b, p, w)
        pooled = self.pooled(h.mean(1), p)  # [T, p, W]
        delta = self.head(self.norm(pooled)).to(s.dtype)
        gain = update_gain(n, b, self.cfg.update_scale).view(-1, 1, 1).to(s.dtype)
        return {"s": s + gain * delta, "x_query": state["x_query"], "n": n + b}

    def predict(self, state: State, x_query: Tensor) -> Tensor:
        if x_query.shape != state["x_query"].shape:
            raise ConfigError("order learner: predict() must be asked about the queries given to init()")
        s = state["s"]
        return self.readout(s) if self.readout is not None else s

    def extra_repr(self) -> str:
        return f"name={self.name!r}, regime=implicit, state={self.state_kind}, mode={self.mode}"


# ---------------------------------------------------------------------------- references


class RandomOrderLearner:
    """A uniformly random order per task (seeded), whatever the data."""

    regime, signal, name = "classical", "none", "random_order"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def init(self, x_query: Tensor) -> State:
        t, p, _ = x_query.shape
        scores = torch.rand(t, p, 1, generator=generator(self.seed)).to(x_query)
        return {"s": scores}

    def step(self, state: State, x: Tensor, y: Tensor) -> State:
        return state

    def predict(self, state: State, x_query: Tensor) -> Tensor:
        return state["s"]


class _Moments:
    """Running count, sum and (co)variance sums of the samples read, in float64."""

    cross = False

    def init(self, x_query: Tensor) -> State:
        t, p, _ = x_query.shape
        z = torch.zeros(t, device=x_query.device, dtype=_F64)
        sq = torch.zeros(t, p, p, device=x_query.device, dtype=_F64) if self.cross else \
            torch.zeros(t, p, device=x_query.device, dtype=_F64)
        return {"n": z, "sum": torch.zeros(t, p, device=x_query.device, dtype=_F64), "sq": sq,
                "dtype": x_query.new_zeros(0)}

    def step(self, state: State, x: Tensor, y: Tensor) -> State:
        x = x.to(_F64)
        sq = x.mT @ x if self.cross else x.pow(2).sum(1)
        return {"n": state["n"] + x.shape[1], "sum": state["sum"] + x.sum(1), "sq": state["sq"] + sq,
                "dtype": state["dtype"]}

    @staticmethod
    def covariance(state: State) -> Tensor:
        n = state["n"].clamp_min(1).view(-1, 1, 1)
        mean = state["sum"].unsqueeze(-1) / n
        return state["sq"] / n - mean @ mean.mT


class VarSortLearner(_Moments):
    """Sort by the marginal variance of the samples read so far (smallest first)."""

    regime, signal, name = "classical", "none", "var_sort"

    def predict(self, state: State, x_query: Tensor) -> Tensor:
        n = state["n"].clamp_min(1).unsqueeze(-1)
        var = state["sq"] / n - (state["sum"] / n).pow(2)
        return var.unsqueeze(-1).to(state["dtype"].dtype)


class SinkSearchLearner(_Moments):
    """Regression-based sink search on the running covariance (module docstring). ``ridge`` (times the
    mean variance) keeps the covariance invertible when fewer samples than variables were read."""

    regime, signal, name = "classical", "none", "sink_search"
    cross = True

    def __init__(self, ridge: float = 1e-6):
        self.ridge = ridge

    def predict(self, state: State, x_query: Tensor) -> Tensor:
        cov = self.covariance(state)
        t, p, _ = cov.shape
        eye = torch.eye(p, dtype=_F64, device=cov.device)
        scale = cov.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12).view(-1, 1, 1)
        cov = cov + self.ridge * scale * eye
        remaining = torch.ones(t, p, dtype=torch.bool, device=cov.device)
        scores = torch.zeros(t, p, dtype=_F64, device=cov.device)
        for r in range(p):
            keep = (remaining.unsqueeze(-1) & remaining.unsqueeze(-2)).to(_F64)
            # removed variables are decoupled (identity rows/columns), so the inverse restricted to the
            # remaining ones is the precision matrix of the remaining variables
            sub = cov * keep + eye * (1 - keep)
            prec_diag = torch.linalg.inv(sub).diagonal(dim1=-2, dim2=-1)
            sink = prec_diag.masked_fill(~remaining, float("inf")).argmin(-1)  # largest residual variance
            scores.scatter_(1, sink.unsqueeze(-1), float(p - 1 - r))
            remaining.scatter_(1, sink.unsqueeze(-1), False)
        return scores.unsqueeze(-1).to(state["dtype"].dtype)
