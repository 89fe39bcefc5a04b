"""In-context generation by flow matching (:mod:`iai.core.tasks.generation`): the learner and its reference.

:class:`FlowLearner` (regime ``implicit``, ``state: hidden``). Generation integrates the velocity
field along trajectories whose points are not known until the field is, so a state held at fixed
query points (the implicit regime's running prediction per query) cannot serve it. Our reading:
the state is the *conditioning* itself, ``latent_tokens`` hidden vectors of ``model.width`` that
summarize the samples read so far, refined over mini-batches like any implicit state:

    z^(0) learned;  z^(i+1) = z^(i) + gain_i * r_gamma(z^(i), B^(i))

where r is a set transformer over the conditioning tokens (with the step features) and the
observation tokens of the mini-batch (one per sample; all tokens attend to all). The velocity
network v_gamma(x, t | z) is a second set transformer whose query tokens (x, and t as
[t, sin 2 pi k t, cos 2 pi k t], k = 1..4) attend to the conditioning tokens only (never to each
other), so v at a point does not depend on which other points are asked about. Both are trained
jointly by the CFM loss of each step's new state (greedy, detached between steps, as every learned
learner here). A one-shot twin (``mode: one_shot``) takes one step over its whole context.

``predict`` answers each query (x_t, t, x_0) with (v(x_t, t | z), the sample generated from x_0 by
``family.euler_steps`` Euler steps of v); in training mode it skips the generation (NaN), which
the loss does not read.

:class:`TrueSamplesLearner` (``true_samples``, the MMD floor): it "generates" true samples of the
task, namely the train points it has read (independent of the valid points): the first M, or, while
fewer than M were read, M draws with replacement from them (then it is the empirical distribution
of the data read). Its velocity is the exact marginal field toward that empirical distribution
(:func:`iai.core.tasks.generation.empirical_velocity`), so its CFM loss is that of a learner that
memorizes the data it read.
"""

from __future__ import annotations

import math

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
from iai.core.tasks import GenerationFamily, TaskFamily
from iai.core.tasks.generation import empirical_velocity, euler_generate
from iai.utils import ConfigError, generator

N_FREQ = 4  # Fourier features of t


def time_features(t: Tensor) -> Tensor:
    """``[.., 1]`` -> ``[.., 1 + 2 * N_FREQ]``: t, sin(2 pi k t), cos(2 pi k t)."""
    k = torch.arange(1, N_FREQ + 1, device=t.device, dtype=t.dtype) * (2 * math.pi)
    return torch.cat([t, torch.sin(k * t), torch.cos(k * t)], -1)


@learner("flow", example=("mixture_generation", {"dim": 2, "n_components": 2},
                             {"regime": "implicit", "state": "hidden", "latent_tokens": 2}))
class FlowLearner(LearnedLearner):
    for_families = (GenerationFamily,)
    regime = "implicit"

    def __init__(self, name: str, family: TaskFamily, cfg: LearnerConfig, model: ModelConfig,
                 batch_size: int, context_size: int):
        if not isinstance(family, GenerationFamily):
            raise ConfigError(f"flow learner: needs a generation family, got {family.kind}")
        if cfg.state != "hidden":
            raise ConfigError(f"run.state: the flow learner's state is its conditioning tokens; expected 'hidden', "
                              f"got {cfg.state!r}")
        if cfg.history:
            raise ConfigError(f"run.history: the flow learner has no history window; expected 0, got {cfg.history}")
        super().__init__(name, family, cfg, model, batch_size, context_size)
        d, w = family.dim, model.width
        self.z0 = nn.Parameter(torch.randn(cfg.latent_tokens, w) * 0.02)  # the learned initial conditioning
        self.encoder = SetTransformer(model, {"cond": w + n_step_features(cfg), "obs": d})
        self.update = zero_linear(w, w)
        self.decoder = SetTransformer(model, {"cond": w, "query": d + 1 + 2 * N_FREQ})
        self.velocity_head = zero_linear(w, d)

    def init(self, x_query: Tensor) -> State:
        t = x_query.shape[0]
        return {"z": self.z0.to(x_query.dtype).expand(t, -1, -1), "n": x_query.new_zeros(t)}

    def step(self, state: State, x: Tensor, y: Tensor) -> State:
        z, n, b = state["z"], state["n"], x.shape[1]
        sf = step_features(n, b, self.cfg).to(z.dtype).unsqueeze(1).expand(-1, z.shape[1], -1)
        out = self.encoder([("cond", torch.cat([z, sf], -1), None), ("obs", x, None)], n_context_groups=2,
                           outputs=(0, 1))
        gain = update_gain(n, b, self.cfg.update_scale).view(-1, 1, 1).to(z.dtype)
        return {"z": z + gain * self.update(out[0]).to(z.dtype), "n": n + b}

    def velocity(self, z: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """v(x, t | z) ``[T, M, d]`` for points ``x [T, M, d]`` at times ``t [T, M, 1]``."""
        out = self.decoder([("cond", z, None), ("query", torch.cat([x, time_features(t)], -1), None)],
                           n_context_groups=1, outputs=(1, 2))
        return self.velocity_head(out[1]).to(x.dtype)

    def generate(self, state: State, x0: Tensor, steps: int | None = None) -> Tensor:
        """Samples ``[T, M, d]`` generated from the noise ``x0`` by Euler steps of the field."""
        z = state["z"]
        return euler_generate(lambda x, t: self.velocity(z, x, t), x0, steps or self.family.euler_steps)

    def predict(self, state: State, x_query: Tensor) -> Tensor:
        xt, t, x0 = self.family.split_query(x_query)
        v = self.velocity(state["z"], xt, t)
        if self.training:
            generated = torch.full_like(x0, float("nan"))
        else:
            with torch.no_grad():
                generated = self.generate(state, x0)
        return torch.cat([v, generated], -1)

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, regime=implicit, state=hidden ({self.cfg.latent_tokens} conditioning tokens), "
                f"mode={self.mode}")


class TrueSamplesLearner:
    """The MMD floor: the task's own train samples read so far as the generated samples (module docstring)."""

    regime, signal, name = "exact", "none", "true_samples"

    def __init__(self, family: TaskFamily, seed: int = 0):
        if not isinstance(family, GenerationFamily):
            raise ConfigError(f"true_samples: needs a generation family, got {family.kind}")
        self.family, self.seed = family, seed

    def init(self, x_query: Tensor) -> State:
        t = x_query.shape[0]
        return {"data": x_query.new_zeros(t, 0, self.family.dim)}

    def step(self, state: State, x: Tensor, y: Tensor) -> State:
        return {"data": torch.cat([state["data"], x], 1)}

    def predict(self, state: State, x_query: Tensor) -> Tensor:
        xt, t, x0 = self.family.split_query(x_query)
        data = state["data"]
        tasks, m, n = x0.shape[0], x0.shape[1], data.shape[1]
        if n == 0:
            raise ConfigError("true_samples: predict() before any step (no samples read)")
        v = empirical_velocity(xt, t, data)
        if n >= m:
            generated = data[:, :m]
        else:
            index = torch.randint(n, (tasks, m), generator=generator(self.seed)).to(data.device)
            generated = data.gather(1, index.unsqueeze(-1).expand(-1, -1, data.shape[-1]))
        return torch.cat([v, generated], -1)
