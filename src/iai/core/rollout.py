"""The one loop: drive any learner over a task's train data in mini-batches, score it on valid points.

Every learner, exact, classical or learned, is run by :func:`rollout`, and meta-training draws its
mini-batches from the same :func:`minibatch_indices`, so a learner sees the same kind of data
stream in training and in evaluation.

Schedules (``schedule=``):

- ``"epochs"``: disjoint passes over the train points, reshuffled per epoch and per task; a pass
  over n points takes ceil(n / B) steps (the last mini-batch of a pass may be smaller).
- ``"random"``: each step an independent random subset of B points (without replacement).
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor

from iai.core.learners.base import Learner, State
from iai.core.tasks import TaskBatch, TaskFamily
from iai.utils import ConfigError, generator

SCHEDULES = ("epochs", "random")
_GATHER_STEPS = 64  # mini-batches gathered in one indexing call by the rollout


def steps_for(n_train: int, batch_size: int, epochs: int = 1) -> int:
    """Steps that ``epochs`` disjoint passes over ``n_train`` points take with mini-batch B."""
    return math.ceil(n_train / batch_size) * epochs


def epoch_orders(n_tasks: int, n_train: int, batch_size: int, n_steps: int, schedule: str = "epochs",
                 gen: torch.Generator | None = None) -> Iterator[tuple[Tensor, list[tuple[int, int]]]]:
    """The stream of :func:`minibatch_indices` one draw at a time: ``(order [T, N], [(start, stop), ...])``.

    Each draw is one random order of every task's train points and the slices of it that the next
    steps read (a whole pass for ``"epochs"``, the first b for ``"random"``), so a caller can gather
    the points once per pass and slice views per step, with the same random numbers.
    """
    if schedule not in SCHEDULES:
        raise ConfigError(f"schedule: unknown {schedule!r}; expected one of {list(SCHEDULES)}")
    if batch_size < 1 or n_train < 1:
        raise ConfigError(f"batch_size and n_train: expected >= 1, got {batch_size} and {n_train}")
    gen = gen or generator(0)
    b = min(batch_size, n_train)
    done = 0
    while done < n_steps:
        perm = torch.rand(n_tasks, n_train, generator=gen).argsort(-1)  # a fresh order per task
        if schedule == "random":
            yield perm[:, :b], [(0, b)]
            done += 1
            continue
        spans = [(start, min(start + b, n_train)) for start in range(0, n_train, b)][:n_steps - done]
        yield perm, spans
        done += len(spans)


def minibatch_indices(n_tasks: int, n_train: int, batch_size: int, n_steps: int,
                      schedule: str = "epochs", gen: torch.Generator | None = None) -> Iterator[Tensor]:
    """Yield ``n_steps`` index tensors ``[T, b]`` into each task's train points (b <= B)."""
    for perm, spans in epoch_orders(n_tasks, n_train, batch_size, n_steps, schedule, gen):
        for start, stop in spans:
            yield perm[:, start:stop]


def gather_points(x: Tensor, index: Tensor) -> Tensor:
    """``x[t, index[t]]`` for every task t: ``[T, N, F]`` and ``[T, b]`` -> ``[T, b, F]``."""
    return torch.gather(x, 1, index.to(x.device).unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def eval_steps(n_steps: int, spacing: str | Sequence[int] = "log") -> list[int]:
    """Which steps to score: ``"all"``, ``"log"`` (1, 2, 4, ... and the last) or an explicit list."""
    if spacing == "all":
        return list(range(1, n_steps + 1))
    if spacing == "log":
        steps = {2**i for i in range(n_steps.bit_length()) if 2**i <= n_steps}
        return sorted(steps | {n_steps})
    if spacing == "last":
        return [n_steps]
    if isinstance(spacing, str):
        raise ConfigError(f"eval steps: expected 'all', 'log', 'last' or a list, got {spacing!r}")
    return sorted({s for s in spacing if 1 <= s <= n_steps} | {n_steps})


@torch.no_grad()
def rollout(learner: Learner, family: TaskFamily, tasks: TaskBatch, batch_size: int,
            n_steps: int | None = None, epochs: int = 1, schedule: str = "epochs",
            steps: str | Sequence[int] = "log", seed: int = 0, task_chunk: int | None = None,
            device: torch.device | str | None = None, step_fn: Callable | None = None) -> list[dict]:
    """Run ``learner`` over every task's train points and score it on the valid points.

    ``step_fn`` replaces ``learner.step`` (the same function compiled, in ``iai bench cost``).
    ``n_steps`` defaults to ``epochs`` passes over the train points. Tasks are processed in chunks of
    ``task_chunk`` (all at once by default) to bound memory. Returns one record per (step, metric):
    ``{"step", "n_seen", "metric", "value", "sem", "n_tasks", "values"}`` where value is the mean over
    tasks, sem its standard error and values the per-task numbers (a float64 numpy array, in task
    order); ``n_seen`` counts the points read (repeats included).
    """
    n_steps = n_steps or steps_for(tasks.n_train, batch_size, epochs)
    step = step_fn or learner.step
    wanted = set(eval_steps(n_steps, steps))
    chunk = task_chunk or tasks.n_tasks
    # chunks only bound memory: the index stream is drawn for all tasks at once, so the numbers
    # do not depend on the chunk size
    parts = [tasks.tasks(slice(s, s + chunk)) for s in range(0, tasks.n_tasks, chunk)]
    if device is not None:
        parts = [p.to(device) for p in parts]
    states: list[State] = [learner.init(p.x_valid) for p in parts]
    per_step: dict[int, dict[str, list[Tensor]]] = {}
    seen: dict[int, int] = {}
    n_seen = 0
    # the points of up to _GATHER_STEPS steps are gathered at once per chunk and each step reads a view:
    # no indexing work per step, and memory stays bounded by a block of mini-batches, not by n
    i = 0
    for order, spans in epoch_orders(tasks.n_tasks, tasks.n_train, batch_size, n_steps, schedule, generator(seed)):
        for g in range(0, len(spans), _GATHER_STEPS):
            block = spans[g:g + _GATHER_STEPS]
            lo, hi = block[0][0], block[-1][1]
            orders = [order[c * chunk:(c + 1) * chunk, lo:hi] for c in range(len(parts))]
            xs = [_by_step(gather_points(p.x_train, o), block) for p, o in zip(parts, orders)]
            ys = [_by_step(gather_points(p.y_train, o), block) for p, o in zip(parts, orders)]
            for j, (start, stop) in enumerate(block):
                i += 1
                n_seen += stop - start
                scored = i in wanted
                for c, part in enumerate(parts):
                    states[c] = step(states[c], xs[c][j], ys[c][j])
                    if scored:
                        pred = learner.predict(states[c], part.x_valid)
                        for name, values in family.metrics(pred, part.y_valid, part.f_valid).items():
                            per_step.setdefault(i, {}).setdefault(name, []).append(values.detach().double().cpu())
                if scored:
                    seen[i] = n_seen
    return summarize(per_step, seen)


def _by_step(points: Tensor, block: list[tuple[int, int]]) -> list[Tensor]:
    """A gathered block ``[T, L, F]`` as one ``[T, b, F]`` tensor per step of ``block``. Equal steps
    are one copy to ``[steps, T, b, F]`` whose entries are contiguous (a compiled step needs no copy
    and no recompile per stride); unequal ones (a pass's short last step) are views."""
    lo, sizes = block[0][0], {stop - start for start, stop in block}
    if len(sizes) == 1:
        return list(points.unflatten(1, (len(block), -1)).transpose(0, 1).contiguous())
    return [points[:, start - lo:stop - lo] for start, stop in block]


def summarize(per_step: dict[int, dict[str, list[Tensor]]], seen: dict[int, int]) -> list[dict]:
    """Mean and standard error over tasks of each step's per-task metrics, and the metrics themselves."""
    records = []
    for step, metrics in per_step.items():
        for name, chunks in metrics.items():
            values = torch.cat(chunks)
            n = values.numel()
            sem = values.std().item() / math.sqrt(n) if n > 1 else float("nan")
            records.append({"step": step, "n_seen": seen[step], "metric": name,
                            "value": values.mean().item(), "sem": sem, "n_tasks": n, "values": values.numpy()})
    return records
