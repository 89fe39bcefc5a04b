"""Greedy meta-training, one iteration at a time: the settings and the step every trainer shares.

Two samplers (``train.sampler``) decide which steps an iteration trains; both are greedy (the state
is detached between steps, so no gradient crosses a step: each step is trained on the valid loss of
the state it produces) and both read each task's train points in mini-batches drawn by the
evaluation's own :func:`iai.core.rollout.minibatch_indices`.

- ``"rollout"`` (the default, :func:`train_iteration`): each iteration samples a fresh batch of
  ``tasks_per_batch`` tasks (from the seed it is given), draws the rollout length k uniformly from
  1..K_train and rolls the learner over k mini-batches, averaging the k step losses. Step depth d
  gets weight sum_{k>=d} 1/(K k) (for K = 8: 0.34 at d = 1, 0.016 at d = 8), and an iteration costs
  tasks_per_batch * k task-steps ((K + 1) / 2 * tasks_per_batch on average).
- ``"pool"`` (:class:`TaskPool`): a persistent pool of ``tasks_per_batch`` task states at mixed
  depths. Each iteration advances every task by one step (one forward and backward over the pool)
  and trains on the mean over the pool of the valid loss after that step; the states are detached
  and kept, tasks that have taken K_train steps are retired and replaced by fresh tasks at depth 0.
  The pool is staggered from the first iteration (slot j starts at depth j mod K_train, rolled there
  without gradient by the initial weights), so every depth 1..K_train is trained equally often and
  an iteration costs ``tasks_per_batch`` task-steps. ``random_steps`` does not apply.

Within a rollout iteration, ``train.steps_at_once`` (default true) computes the same gradient
with fewer, larger calls: the k states are first rolled forward without gradient, then all k steps
are taken again as one batch of k * tasks_per_batch tasks (step i from the detached state i - 1,
step 1 from theta^(0)) with one forward and one backward. Greedy training never backpropagates
into an earlier step, so the gradient is the sum of the same k per-step gradients (equal to the
sequential path's up to float rounding; tested); a step costs about 1.3x the arithmetic but a
k-th of the calls, which is what bounds these small networks on a CPU (``iai bench train
--compare``). ``false`` keeps the step-by-step loop.

A one-shot learner takes a single step over a context of k * B points (k uniform in 1..K_train)
with either sampler. On CUDA the step network runs under bf16 autocast. ``iai train`` (the
optimizer, schedule, checkpoints) and ``iai bench train`` (throughput) both drive
:func:`train_iteration` and :class:`TaskPool` (see :func:`uses_pool`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from iai.core.learners.base import State, detach
from iai.core.rollout import SCHEDULES, gather_points, minibatch_indices
from iai.core.tasks import TaskFamily
from iai.utils import ConfigError, generator

TARGETS = ("observed", "noiseless")
SAMPLERS = ("rollout", "pool")


@dataclass(frozen=True)
class TrainConfig:
    """Greedy meta-training settings (params ``train:``, merged per run).

    ``target='noiseless'`` scores each step against the valid points' noiseless truth (the
    regression function, or the teacher's class probabilities) instead of their sampled labels: the
    same minimizer, with less variance per task (training tasks are synthetic, so the truth is known).
    ``sampler`` picks the greedy sampler (module docstring); with ``"pool"``, ``tasks_per_batch`` is
    the pool size (tasks advanced per iteration).
    """

    batch_size: int = 16
    max_steps: int = 8
    random_steps: bool = True
    tasks_per_batch: int = 32
    n_valid: int = 32
    iterations: int = 1000
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 100
    grad_clip: float = 1.0
    schedule: str = "epochs"
    target: str = "observed"
    threads: int = 1
    log_every: int = 50
    checkpoint_every: int = 250
    sampler: str = "rollout"
    steps_at_once: bool = True

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_steps", "tasks_per_batch", "n_valid", "iterations", "log_every",
                     "checkpoint_every"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ConfigError(f"train.{name}: expected an integer >= 1, got {value!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"train.schedule: expected one of {list(SCHEDULES)}, got {self.schedule!r}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"train.sampler: expected one of {list(SAMPLERS)}, got {self.sampler!r}")
        if not isinstance(self.steps_at_once, bool):
            raise ConfigError(f"train.steps_at_once: expected true or false, got {self.steps_at_once!r}")
        if self.target not in TARGETS:
            raise ConfigError(f"train.target: expected one of {list(TARGETS)}, got {self.target!r}")
        if not (self.lr > 0 and self.grad_clip > 0 and self.weight_decay >= 0 and self.warmup >= 0
                and self.threads >= 0):
            raise ConfigError("train: lr and grad_clip must be > 0; weight_decay, warmup and threads >= 0")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"train: unknown key(s) {unknown}; expected some of {sorted(cls.__dataclass_fields__)}")
        return cls(**values)


def lr_factor(it: int, warmup: int, total: int) -> float:
    """Linear warmup over ``warmup`` iterations, then cosine decay to zero at ``total``."""
    if it < warmup:
        return (it + 1) / warmup
    progress = (it - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train_iteration(learner, family: TaskFamily, tc: TrainConfig, seed: int, device: torch.device) -> tuple[float, int]:
    """One optimizer iteration's forward and backward (gradients accumulate in ``learner``).

    Returns (mean step loss, rollout length k). Each step's state is detached before the next step
    reads it, so ``backward`` of step i reaches only step i's parameters use (and theta^(0) at i=1).
    """
    gen = generator(seed)
    k = int(torch.randint(1, tc.max_steps + 1, (1,), generator=gen)) if tc.random_steps else tc.max_steps
    n_train = k * tc.batch_size
    one_shot = learner.mode == "one_shot"
    steps, batch = (1, n_train) if one_shot else (k, tc.batch_size)
    tasks = family.sample(tc.tasks_per_batch, n_train, tc.n_valid, gen).to(device)
    target = tasks.f_valid if tc.target == "noiseless" else tasks.y_valid
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    state = learner.init(tasks.x_valid)
    stream = list(minibatch_indices(tc.tasks_per_batch, n_train, batch, steps, tc.schedule, gen))
    if tc.steps_at_once and steps > 1 and len({index.shape[1] for index in stream}) == 1:
        return _steps_at_once(learner, family, tasks, target, state, stream, autocast), k
    total = torch.zeros((), device=device)
    for i, index in enumerate(stream):
        if i:
            state = detach(state)
        with autocast:
            state = learner.step(state, gather_points(tasks.x_train, index), gather_points(tasks.y_train, index))
            pred = learner.predict(state, tasks.x_valid)
        loss = family.loss(pred.float(), target).mean()
        (loss / steps).backward()
        total += loss.detach()
    return total.item() / steps, k


def _steps_at_once(learner, family: TaskFamily, tasks, target: torch.Tensor, first: State,
                   stream: list[torch.Tensor], autocast) -> float:
    """:func:`train_iteration`'s k greedy steps as one batch (``train.steps_at_once``); returns the mean step loss.

    The states before steps 2..k come from a rollout without gradient; step 1 reads ``first``
    (theta^(0), with gradient). Stacking them along the task axis, one call of ``learner.step`` takes
    all k steps, and the mean of its valid loss over the k * T tasks is the sequential path's
    sum over steps of (step loss / k), since every step has T tasks.
    """
    xs = [gather_points(tasks.x_train, index) for index in stream]
    ys = [gather_points(tasks.y_train, index) for index in stream]
    states = [first]
    with torch.no_grad(), autocast:
        state = detach(first)
        for x, y in zip(xs[:-1], ys[:-1]):
            state = learner.step(state, x, y)
            states.append(state)
    k = len(stream)
    stacked = {key: torch.cat([s[key] for s in states]) for key in first}
    with autocast:
        new = learner.step(stacked, torch.cat(xs), torch.cat(ys))
        pred = learner.predict(new, tasks.x_valid.repeat(k, *[1] * (tasks.x_valid.dim() - 1)))
    loss = family.loss(pred.float(), target.repeat(k, *[1] * (target.dim() - 1))).mean()
    loss.backward()
    return loss.item()


def uses_pool(learner, tc: TrainConfig) -> bool:
    """Whether ``learner`` trains with a :class:`TaskPool` (one-shot learners keep the rollout path)."""
    return tc.sampler == "pool" and learner.mode != "one_shot"


def _put(state: State, index: torch.Tensor, part: State) -> State:
    """``state`` with the tasks at ``index`` replaced by ``part`` (out of place, differentiable in ``part``)."""
    out = {}
    for key, value in state.items():
        dtype = torch.promote_types(value.dtype, part[key].dtype)
        out[key] = value.to(dtype).index_put((index,), part[key].to(dtype))
    return out


class TaskPool:
    """The ``"pool"`` sampler: ``size`` tasks at mixed depths, each advanced one step per iteration.

    Each task owns n_train = K_train * B train points, read as the K_train mini-batches that
    :func:`minibatch_indices` draws for it when it joins (one ``epochs`` pass), and ``n_valid`` valid
    points. The stored states were computed by the weights of earlier iterations (stale, up to
    K_train - 1 optimizer updates old): that is expected, as in any replay of greedy states; each
    step is still trained on the state the current weights produce from it. The pool is plain
    tensors (:meth:`state_dict`), so a resume checkpoint restores it exactly.
    """

    def __init__(self, size: int):
        self.size = size
        self.data: dict[str, torch.Tensor] | None = None  # x [P, K, B, D], y [P, K, B, O], x_valid, target, depth [P]
        self.state: State | None = None

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        if self.data is None:
            return {}
        return {"data": dict(self.data), "state": dict(self.state)}

    def load_state_dict(self, blob: dict, device: torch.device | None = None) -> None:
        if not blob:
            self.data = self.state = None
            return
        self.data = {k: v.to(device) if device is not None else v for k, v in blob["data"].items()}
        self.state = {k: v.to(device) if device is not None else v for k, v in blob["state"].items()}

    @property
    def depth(self) -> torch.Tensor:
        """Steps each task has taken (1..K_train after an :meth:`advance`)."""
        return self.data["depth"]

    # ------------------------------------------------------------------ sampling
    def _fresh(self, n: int, family: TaskFamily, tc: TrainConfig, gen: torch.Generator,
               device: torch.device) -> dict[str, torch.Tensor]:
        """``n`` new tasks at depth 0, their mini-batches drawn in the order they will be read."""
        k, b = tc.max_steps, tc.batch_size
        tasks = family.sample(n, k * b, tc.n_valid, gen)
        index = torch.stack(list(minibatch_indices(n, k * b, b, k, tc.schedule, gen)), 1)  # [n, K, B]
        x = gather_points(tasks.x_train, index.flatten(1)).unflatten(1, (k, b))
        y = gather_points(tasks.y_train, index.flatten(1)).unflatten(1, (k, b))
        target = tasks.f_valid if tc.target == "noiseless" else tasks.y_valid
        return {"x": x.to(device), "y": y.to(device), "x_valid": tasks.x_valid.to(device),
                "target": target.to(device), "depth": torch.zeros(n, dtype=torch.long, device=device)}

    def _fill(self, learner, family: TaskFamily, tc: TrainConfig, gen: torch.Generator, device: torch.device,
              autocast) -> None:
        """The first pool: slot j at depth j mod K_train, rolled there without gradient (no burn-in)."""
        data = self._fresh(self.size, family, tc, gen, device)
        data["depth"] = torch.arange(self.size, device=device) % tc.max_steps
        with torch.no_grad(), autocast:
            state = learner.init(data["x_valid"])
            for d in range(tc.max_steps - 1):
                index = (data["depth"] > d).nonzero().squeeze(1)
                if not len(index):
                    break
                part = learner.step({k: v[index] for k, v in state.items()}, data["x"][index, d], data["y"][index, d])
                state = _put(state, index, part)
        self.data, self.state = data, detach(state)

    # ------------------------------------------------------------------ one iteration
    def advance(self, learner, family: TaskFamily, tc: TrainConfig, seed: int,
                device: torch.device) -> tuple[float, float]:
        """One optimizer iteration's forward and backward: every task takes its next step.

        Retired tasks (K_train steps taken) are first replaced by fresh ones drawn from ``seed``;
        fresh tasks start from ``learner.init`` (with gradient, so theta^(0) is trained by the
        depth-1 steps). Returns (mean valid loss over the pool after the step, mean depth of that step).
        """
        if learner.mode == "one_shot":
            raise ConfigError("TaskPool: one-shot learners train with the rollout sampler (train_iteration)")
        gen = generator(seed)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
        if self.data is None:
            self._fill(learner, family, tc, gen, device, autocast)
        retired = (self.data["depth"] >= tc.max_steps).nonzero().squeeze(1)
        if len(retired):
            new = self._fresh(len(retired), family, tc, gen, device)
            self.data = {k: v.index_put((retired,), new[k]) for k, v in self.data.items()}
        data, depth = self.data, self.data["depth"]
        fresh = (depth == 0).nonzero().squeeze(1)
        slots = torch.arange(self.size, device=device)
        with autocast:
            state = self.state
            if len(fresh):
                state = _put(state, fresh, learner.init(data["x_valid"][fresh]))
            state = learner.step(state, data["x"][slots, depth], data["y"][slots, depth])
            pred = learner.predict(state, data["x_valid"])
        loss = family.loss(pred.float(), data["target"]).mean()
        loss.backward()
        self.state = detach(state)
        self.data["depth"] = depth + 1
        return loss.item(), float(self.data["depth"].float().mean())
