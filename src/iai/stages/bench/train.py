"""``iai bench train``: meta-training throughput per regime, and the speed-up of the batched path."""

from __future__ import annotations

import math
import time

import torch

from iai.core.flops import step_flops
from iai.core.learners.backbone import SetTransformer
from iai.core.training import TaskPool, TrainConfig, train_iteration, uses_pool
from iai.stages.bench import cost
from iai.utils import derive_seed, describe_device, resolve_device

# dense bf16 matrix peak (FLOP/s) by GPU name, as nanoGPT's estimate_mfu uses A100's 312e12
GPU_PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "V100": 125e12,
                  "RTX 4090": 165e12}


# the path before `train.steps_at_once`, the fused optimizer and the pruned last block (every token
# computed, read or not): the side-by-side baseline of `--compare`
STEP_BY_STEP = {"steps_at_once": False, "fused": False, "prune": False}
FAST = {"steps_at_once": True, "fused": True, "prune": True}


def _train_throughput(learner, family, tc: TrainConfig, dev: torch.device, iterations: int, fused: bool) -> dict:
    """Meta-training throughput of ``learner`` (trained in place) over ``iterations`` timed iterations,
    with ``iai train``'s optimizer step (fused or per-parameter AdamW). The warm-up runs until every
    rollout depth 1..K_train has been seen (at least 3 iterations): each depth is a new shape, whose
    first call pays kernel selection and allocator growth (on a GPU, several times a step's cost),
    which would otherwise fall on whichever path is timed first."""
    opt = torch.optim.AdamW(learner.parameters(), lr=tc.lr, fused=fused)
    pool = TaskPool(tc.tasks_per_batch) if uses_pool(learner, tc) else None

    def one(it: int) -> int:
        opt.zero_grad(set_to_none=True)
        it_seed = derive_seed(0, "bench-train", learner.name, it)
        if pool is not None:
            pool.advance(learner, family, tc, it_seed, dev)
            k = 1  # one step per task of the pool
        else:
            _, k = train_iteration(learner, family, tc, it_seed, dev)
        torch.nn.utils.clip_grad_norm_(learner.parameters(), tc.grad_clip, foreach=fused)
        opt.step()
        return k

    depths = set(range(1, tc.max_steps + 1)) if tc.random_steps and pool is None else set()
    seen: set[int] = set()
    for it in range(max(3, 20 * tc.max_steps)):
        seen.add(one(it))
        if it >= 2 and depths <= seen:
            break
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    start = time.perf_counter()
    ks = [one(1_000_000 + it) for it in range(iterations)]  # the same timed iterations whatever the warm-up took
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    secs = time.perf_counter() - start
    # the work done, counted after the clock stops: an iteration of k steps trains tasks_per_batch
    # tasks for k steps (a one-shot learner: one step over k * B points)
    tasks_steps = flops = 0
    for k in ks:
        steps = 1 if learner.mode == "one_shot" else k
        f = step_flops(learner, k * tc.batch_size if learner.mode == "one_shot" else tc.batch_size, tc.n_valid)
        tasks_steps += tc.tasks_per_batch * steps
        flops += 3 * steps * tc.tasks_per_batch * (f["attention"] + f["dense"])
    return {"sampler": "pool" if pool is not None else "rollout", "iterations_per_s": iterations / secs,
            "task_steps_per_s": tasks_steps / secs, "flops_per_s": flops / secs}


def bench_train(params_file: str | None = None, family_name: str | None = None, iterations: int = 20,
                device: str = "cpu", threads: int = 1, sampler: str | None = None, compare: bool = False,
                progress=print) -> dict:
    """Meta-training throughput per regime (each cost pair's iterative and one-shot run): iterations/s,
    tasks x steps per second, and FLOP/s estimated as nanoGPT's ``estimate_mfu`` does (3x the
    forward FLOPs of every step, from :func:`step_flops`); on CUDA also the fraction of the GPU's
    dense bf16 peak (``GPU_PEAK_FLOPS``; None for an unknown GPU). Untrained learners, the run's own
    train settings (``train.iterations`` replaced by ``iterations``; ``train.sampler`` by ``sampler``
    when given: the pool advances tasks_per_batch task-steps an iteration, one-shot runs keep the
    rollout path), after a warm-up that sees every rollout depth.

    ``compare`` also times the step-by-step path (``train.steps_at_once: false``, a per-parameter
    AdamW and a last block that computes every token: the path before all three) from the same
    initial weights and task seeds, after the fast path in the same process, and reports the
    speed-up per run (``speedup``).
    """
    dev = resolve_device(device)
    if dev.type == "cpu" and threads:
        torch.set_num_threads(threads)
    family, learners, _, source = cost.cost_setup(params_file, family_name)
    name = describe_device(dev)
    peak = next((v for k, v in GPU_PEAK_FLOPS.items() if k in name), None) if dev.type == "cuda" else None
    out = {"device": str(dev), "device_name": describe_device(dev), "threads": torch.get_num_threads(),
           "source": source, "iterations": iterations, "peak_flops": peak, "runs": {}}
    paths = {"fast": FAST, **({"step_by_step": STEP_BY_STEP} if compare else {})}
    for regime, pair in learners.items():
        for learner in pair:
            initial = {k: v.clone() for k, v in learner.state_dict().items()}
            row = {"regime": regime, "mode": learner.mode}
            for label, path in paths.items():
                learner.load_state_dict(initial)
                learner = learner.to(dev).train()
                for module in learner.modules():
                    if isinstance(module, SetTransformer):
                        module.prune = path["prune"]
                tc = TrainConfig.from_dict({**learner.config["train"], "steps_at_once": path["steps_at_once"],
                                            **({"sampler": sampler} if sampler else {})})
                r = _train_throughput(learner, family, tc, dev, iterations, path["fused"])
                r["mfu"] = r["flops_per_s"] / peak if peak else None
                if label == "fast":
                    row.update(r)
                else:
                    row[label] = r
                    row["speedup"] = row["task_steps_per_s"] / r["task_steps_per_s"]
            out["runs"][learner.name] = row
            progress(f"bench train {learner.name}: {row['iterations_per_s']:.3g} it/s, "
                     f"{row['task_steps_per_s']:.4g} task-steps/s, {row['flops_per_s'] / 1e9:.3g} GFLOP/s"
                     + (f"; step by step {row['step_by_step']['task_steps_per_s']:.4g} task-steps/s, "
                        f"speed-up {row['speedup']:.2f}x" if compare else ""))
    if compare:
        speedups = [r["speedup"] for r in out["runs"].values()]
        out["speedup_geomean"] = math.exp(sum(map(math.log, speedups)) / len(speedups))
        progress(f"bench train: speed-up over the step-by-step path, geometric mean {out['speedup_geomean']:.2f}x")
    return out
