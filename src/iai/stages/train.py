"""``iai train``: greedy meta-training of one learned learner (a (family, learner) run from the params).

Each iteration samples a fresh batch of tasks (seeded by ``derive_seed(seed, "train", family, name,
iteration)``, never the bank stream), draws the rollout length k uniformly from 1..K_train, and
rolls the learner over k mini-batches drawn by the evaluation's own :func:`iai.core.rollout.minibatch_indices`.
The state is detached between steps, so no gradient crosses a step: each step is trained on the
valid loss of the state it produces, and the k step losses are averaged. A one-shot learner takes a
single step over a context of k * B points instead.

AdamW, linear warmup then cosine decay, gradient-norm clipping. On CUDA the step network runs under
bf16 autocast. Outputs (all written atomically), under ``<out>/<family>/``:

- ``<name>.pt``: the trained learner (state dict + config JSON; see :func:`iai.core.learners.load_learner`);
- ``<name>.csv``: the training log (step, loss, lr, tasks_per_s, elapsed_s, rollout_steps);
- ``<name>.json``: a summary (duration, device, iterations, final loss, threads, ...);
- ``<name>.resume.pt`` while training: model, optimizer, schedule and log at the last checkpoint;
  a restarted run resumes from it and ends with the same weights as an uninterrupted one (CPU).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from iai.core.learners import build_learner, save_learner
from iai.core.learners.base import detach
from iai.core.rollout import SCHEDULES, gather_points, minibatch_indices
from iai.core.tasks import TaskFamily, make_family
from iai.utils import ConfigError, derive_seed, generator, resolve_device, torch_load, torch_save, write_json, write_text

if TYPE_CHECKING:
    from iai.params import RunSpec

log = logging.getLogger(__name__)
LOG_COLUMNS = ("step", "loss", "lr", "tasks_per_s", "elapsed_s", "rollout_steps")
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


def model_paths(out: str | Path, family: str, name: str) -> dict[str, Path]:
    base = Path(out) / family
    return {"model": base / f"{name}.pt", "log": base / f"{name}.csv", "summary": base / f"{name}.json",
            "resume": base / f"{name}.resume.pt"}


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


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


class _Progress:
    """What a resume checkpoint must restore besides the weights: log rows and the open log window."""

    def __init__(self, blob: dict | None = None):
        blob = blob or {}
        self.rows: list[dict] = json.loads(blob.get("log", "[]"))
        self.window = json.loads(blob.get("window", '{"loss": 0.0, "k": 0, "count": 0}'))
        self.elapsed: float = float(blob.get("elapsed", 0.0))

    def add(self, loss: float, k: int) -> None:
        self.window["loss"] += loss
        self.window["k"] += k
        self.window["count"] += 1

    def close(self, step: int, lr: float, tasks_per_s: float) -> None:
        w = self.window
        self.rows.append({"step": step, "loss": w["loss"] / w["count"], "lr": lr, "tasks_per_s": round(tasks_per_s, 2),
                          "elapsed_s": round(self.elapsed, 2), "rollout_steps": w["k"] / w["count"]})
        self.window = {"loss": 0.0, "k": 0, "count": 0}

    def blob(self) -> dict:
        return {"log": json.dumps(self.rows), "window": json.dumps(self.window), "elapsed": self.elapsed}


def train_run(run: "RunSpec", family: TaskFamily, out: str | Path = "data/models", seed: int = 0,
              device: str | torch.device = "auto", stop_after: int | None = None, progress: bool = True) -> dict | None:
    """Train run (family, name) and write its outputs; resume from ``<name>.resume.pt`` if present.

    ``stop_after`` ends the call after that many iterations without finishing (what a kill does;
    for tests). Returns the summary, or None when stopped early.
    """
    tc = TrainConfig.from_dict(run.train)
    dev = resolve_device(device)
    if dev.type == "cpu" and tc.threads:
        torch.set_num_threads(tc.threads)
    paths = model_paths(out, run.family, run.name)
    learner = build_learner(run, family, seed=derive_seed(seed, "train", run.family, run.name, "init")).to(dev)
    identity = json.dumps({"run": learner.config, "seed": seed}, sort_keys=True)
    # weight decay on the layers' weight matrices only (not on embeddings, biases or learned initial states)
    decay = [p for n, p in learner.named_parameters() if n.endswith(".weight") and p.ndim >= 2]
    keep = [p for n, p in learner.named_parameters() if not (n.endswith(".weight") and p.ndim >= 2)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay}, {"params": keep, "weight_decay": 0.0}],
                            lr=tc.lr)
    start, prog = 0, _Progress()
    if paths["resume"].exists():
        blob = torch_load(paths["resume"], map_location=dev)
        if blob.get("identity") != identity:
            raise ConfigError(f"{paths['resume']}: a resume checkpoint from a different config or seed; "
                              f"delete it to start over, or restore the params it was trained with")
        learner.load_state_dict(blob["model"])
        opt.load_state_dict(blob["optimizer"])
        start, prog = int(blob["iteration"]), _Progress(blob)
        log.info("resuming %s/%s at iteration %d", run.family, run.name, start)
    learner.train()
    bar = tqdm(total=tc.iterations, initial=start, disable=not progress, mininterval=2.0, leave=False,
               desc=f"train {run.family}/{run.name}")
    t_window = time.perf_counter()
    for it in range(start, tc.iterations):
        t0 = time.perf_counter()
        lr = tc.lr * lr_factor(it, tc.warmup, tc.iterations)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss, k = train_iteration(learner, family, tc, derive_seed(seed, "train", run.family, run.name, it), dev)
        torch.nn.utils.clip_grad_norm_(learner.parameters(), tc.grad_clip)
        opt.step()
        prog.elapsed += time.perf_counter() - t0
        prog.add(loss, k)
        bar.update(1)
        done = it + 1
        if done % tc.log_every == 0 or done == tc.iterations:
            n_it = prog.window["count"]
            prog.close(done, lr, n_it * tc.tasks_per_batch / max(time.perf_counter() - t_window, 1e-9))
            t_window = time.perf_counter()
            bar.set_postfix(loss=f"{prog.rows[-1]['loss']:.4g}")
        if done % tc.checkpoint_every == 0 and done < tc.iterations:
            torch_save(paths["resume"], {"identity": identity, "iteration": done, "model": learner.state_dict(),
                                         "optimizer": opt.state_dict(), **prog.blob()})
            write_text(paths["log"], _csv(prog.rows))
        if stop_after is not None and done - start >= stop_after and done < tc.iterations:
            bar.close()
            return None
    bar.close()
    learner.eval()
    save_learner(paths["model"], learner)
    write_text(paths["log"], _csv(prog.rows))
    summary = {"stage": "train", "family": run.family, "learner": run.name, "regime": learner.regime,
               "signal": learner.signal, "mode": learner.mode, "duration_s": round(prog.elapsed, 2),
               "device": str(dev), "iterations": tc.iterations, "final_loss": prog.rows[-1]["loss"],
               "threads": torch.get_num_threads(), "parameters": sum(p.numel() for p in learner.parameters()),
               "tasks_per_s": round(tc.iterations * tc.tasks_per_batch / max(prog.elapsed, 1e-9), 1),
               "resumed_at": start or None, "seed": seed, "config": learner.config}
    write_json(paths["summary"], summary)
    paths["resume"].unlink(missing_ok=True)
    return summary


def cli_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", required=True, help="params YAML file (e.g. params/default.yaml)")
    p.add_argument("--family", required=True, help="family name of the run (params `runs:`)")
    p.add_argument("--learner", required=True, help="learner name of the run (params `runs:`)")
    p.add_argument("--out", default="data/models", help="output folder (default: data/models)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda[:N] (default: the params' device)")
    p.add_argument("--iterations", type=int, default=None, help="override train.iterations (e.g. a smoke test)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cli_main(args: argparse.Namespace) -> None:
    import dataclasses

    from iai.params import load_params

    params = load_params(args.params)
    run = params.run(args.family, args.learner)
    if args.iterations is not None:
        if args.iterations < 1:
            raise ConfigError(f"--iterations: expected an integer >= 1, got {args.iterations}")
        run = dataclasses.replace(run, train={**run.train, "iterations": args.iterations})
    spec = params.family(run.family)
    family = make_family(spec.kind, **spec.options)
    summary = train_run(run, family, args.out, seed=params.seed, device=args.device or params.device,
                        progress=not args.no_progress)
    paths = model_paths(args.out, run.family, run.name)
    print(f"wrote {paths['model']} ({summary['iterations']} iterations in {summary['duration_s']:.1f} s on "
          f"{summary['device']}, final loss {summary['final_loss']:.4g})")
