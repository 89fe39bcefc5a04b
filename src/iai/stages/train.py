"""``iai train``: greedy meta-training of one learned learner (a (family, learner) run from the params).

Each iteration is :func:`iai.core.training.train_iteration` on a fresh batch of tasks, or with
``train.sampler: pool`` one :meth:`iai.core.training.TaskPool.advance` of a persistent pool of tasks
at mixed depths (its fresh tasks drawn from the same per-iteration seed), seeded by
``derive_seed(seed, "train", family, name, iteration)``, never the bank stream; this module adds
the optimizer, the schedule, logging and checkpoints.

AdamW, linear warmup then cosine decay, gradient-norm clipping. On CUDA the step network runs under
bf16 autocast. Outputs (all written atomically), under ``<out>/<family>/``:

- ``<name>.pt``: the trained learner (state dict + config JSON; see :func:`iai.core.learners.load_learner`);
- ``<name>.csv``: the training log (step, loss, lr, rollout_steps; with the pool sampler,
  rollout_steps is the mean depth of the steps trained, (K_train + 1) / 2): what was computed, so
  the same run gives the same file; throughput goes to the job's log;
- ``<name>.json``: a summary (device, iterations, final loss, threads, parameters, config), and
  ``<name>.timing.json`` beside it: duration, throughput, where it resumed (:func:`iai.utils.write_summary`);
- ``<name>.resume.pt`` while training: model, optimizer, schedule, log and (pool sampler) the
  pool's tasks, states and depths at the last checkpoint; a restarted run resumes from it and ends
  with the same weights as an uninterrupted one (CPU).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from iai.core.learners import build_learner, run_dir, save_learner
from iai.core.tasks import TaskFamily, build_family
from iai.core.training import TaskPool, TrainConfig, lr_factor, train_iteration, uses_pool
from iai.utils import (
    ConfigError,
    check_writable,
    derive_seed,
    resolve_device,
    torch_load,
    torch_save,
    write_summary,
    write_text,
)

if TYPE_CHECKING:
    from iai.params import RunSpec

log = logging.getLogger(__name__)
LOG_COLUMNS = ("step", "loss", "lr", "rollout_steps")


def model_paths(out: str | Path, family: str, name: str, seed: int = 0) -> dict[str, Path]:
    """The files of one training seed of a run, under :func:`iai.core.learners.run_dir`."""
    base = run_dir(out, family, name)
    return {"model": base / f"seed{seed}.pt", "log": base / f"seed{seed}.csv", "summary": base / f"seed{seed}.json",
            "resume": base / f"seed{seed}.resume.pt"}


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
        self.rows.append({"step": step, "loss": w["loss"] / w["count"], "lr": lr, "rollout_steps": w["k"] / w["count"]})
        log.info("iteration %d: loss %.4g, lr %.3g, %.0f tasks/s, %.1f s", step, self.rows[-1]["loss"], lr, tasks_per_s,
                 self.elapsed)
        self.window = {"loss": 0.0, "k": 0, "count": 0}

    def blob(self) -> dict:
        return {"log": json.dumps(self.rows), "window": json.dumps(self.window), "elapsed": self.elapsed}


def train_run(run: "RunSpec", family: TaskFamily, out: str | Path = "data/models", seed: int = 0, seed_index: int = 0,
              device: str | torch.device = "auto", stop_after: int | None = None, progress: bool = True) -> dict | None:
    """Train run (family, name) and write its outputs; resume from ``<name>.resume.pt`` if present.

    ``stop_after`` ends the call after that many iterations without finishing (what a kill does;
    for tests). Returns the summary, or None when stopped early.
    """
    tc = TrainConfig.from_dict(run.train)
    dev = resolve_device(device)
    if dev.type == "cpu" and tc.threads:
        torch.set_num_threads(tc.threads)
    paths = model_paths(out, run.family, run.name, seed_index)
    learner = build_learner(run, family, seed=derive_seed(seed, "train", run.family, run.name, "init")).to(dev)
    identity = json.dumps({"run": learner.config, "seed": seed}, sort_keys=True)
    # weight decay on the layers' weight matrices only (not on embeddings, biases or learned initial states)
    decay = [p for n, p in learner.named_parameters() if n.endswith(".weight") and p.ndim >= 2]
    keep = [p for n, p in learner.named_parameters() if not (n.endswith(".weight") and p.ndim >= 2)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay}, {"params": keep, "weight_decay": 0.0}],
                            lr=tc.lr, fused=True)  # one kernel for all parameters (CPU and CUDA)
    start, prog = 0, _Progress()
    pool = TaskPool(tc.tasks_per_batch) if uses_pool(learner, tc) else None
    if paths["resume"].exists():
        blob = torch_load(paths["resume"], map_location=dev, remedy="delete it to train this seed from the start")
        if blob.get("identity") != identity:
            raise ConfigError(f"{paths['resume']}: a resume checkpoint from a different config or seed; "
                              f"delete it to start over, or restore the params it was trained with")
        learner.load_state_dict(blob["model"])
        opt.load_state_dict(blob["optimizer"])
        start, prog = int(blob["iteration"]), _Progress(blob)
        if pool is not None:
            pool.load_state_dict(blob.get("pool", {}), dev)
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
        it_seed = derive_seed(seed, "train", run.family, run.name, it)
        if pool is not None:
            loss, k = pool.advance(learner, family, tc, it_seed, dev)
        else:
            loss, k = train_iteration(learner, family, tc, it_seed, dev)
        torch.nn.utils.clip_grad_norm_(learner.parameters(), tc.grad_clip, foreach=True)
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
                                         "optimizer": opt.state_dict(), **prog.blob(),
                                         **({"pool": pool.state_dict()} if pool is not None else {})})
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
               "resumed_at": start or None, "seed": seed_index, "root_seed": seed, "config": learner.config}
    write_summary(paths["summary"], summary)
    paths["resume"].unlink(missing_ok=True)
    return summary


def training_seed(root: int, seed_index: int) -> int:
    """The seed stream of training seed ``seed_index`` of every run: weights and tasks both follow from it."""
    return derive_seed(root, "training-seed", seed_index)


def cli_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", required=True, help="params YAML file (e.g. params/default.yaml)")
    p.add_argument("--family", required=True, help="family name of the run (params `runs:`)")
    p.add_argument("--learner", required=True, help="learner name of the run (params `runs:`)")
    p.add_argument("--seed", type=int, default=None,
                   help="train only this training seed "
                        "(default: every seed 0 .. seeds-1 of the run, one after another)")
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
    if args.seed is not None and not 0 <= args.seed < run.seeds:
        raise ConfigError(f"--seed: run {run.id} has seeds 0..{run.seeds - 1} (params `seeds`), got {args.seed}")
    try:  # the family and its splits (the evaluation's) checked here, before any compute
        family, _ = build_family(params.family(run.family))
    except ConfigError as err:
        raise ConfigError(f"{params.path}: {err}") from err
    check_writable(model_paths(args.out, run.family, run.name, 0)["model"].parent)  # before any compute
    for index in [args.seed] if args.seed is not None else range(run.seeds):
        summary = train_run(run, family, args.out, seed=training_seed(params.seed, index), seed_index=index,
                            device=args.device or params.device, progress=not args.no_progress)
        paths = model_paths(args.out, run.family, run.name, index)
        print(f"wrote {paths['model']} ({summary['iterations']} iterations in {summary['duration_s']:.1f} s on "
              f"{summary['device']}, final loss {summary['final_loss']:.4g})", flush=True)
