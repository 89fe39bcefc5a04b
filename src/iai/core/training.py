"""Greedy meta-training, one iteration at a time: the settings and the step every trainer shares.

Each iteration samples a fresh batch of tasks (from the seed it is given), draws the rollout length k
uniformly from 1..K_train, and rolls the learner over k mini-batches drawn by the evaluation's own
:func:`iai.core.rollout.minibatch_indices`. The state is detached between steps, so no gradient
crosses a step: each step is trained on the valid loss of the state it produces, and the k step
losses are averaged. A one-shot learner takes a single step over a context of k * B points instead.
On CUDA the step network runs under bf16 autocast. ``iai train`` (the optimizer, schedule,
checkpoints) and ``iai bench train`` (throughput) both drive :func:`train_iteration`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from iai.core.learners.base import detach
from iai.core.rollout import SCHEDULES, gather_points, minibatch_indices
from iai.core.tasks import TaskFamily
from iai.utils import ConfigError, generator

TARGETS = ("observed", "noiseless")


@dataclass(frozen=True)
class TrainConfig:
    """Greedy meta-training settings (params ``train:``, merged per run).

    ``target='noiseless'`` scores each step against the valid points' noiseless truth (the
    regression function, or the teacher's class probabilities) instead of their sampled labels: the
    same minimizer, with less variance per task (training tasks are synthetic, so the truth is known).
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

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_steps", "tasks_per_batch", "n_valid", "iterations", "log_every",
                     "checkpoint_every"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ConfigError(f"train.{name}: expected an integer >= 1, got {value!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"train.schedule: expected one of {list(SCHEDULES)}, got {self.schedule!r}")
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
    total = torch.zeros((), device=device)
    stream = minibatch_indices(tc.tasks_per_batch, n_train, batch, steps, tc.schedule, gen)
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
