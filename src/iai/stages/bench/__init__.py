"""``iai bench``: wall time and peak memory of an iterative learner against its one-shot counterpart.

Three commands, a module each: ``iai bench`` (:mod:`.table`, the pipeline's cost rows), ``iai bench
cost`` (:mod:`.cost`, claim 6's scaling in n) and ``iai bench train`` (:mod:`.train`, meta-training
throughput); one timing helper (:mod:`.timing`); the counted FLOPs are :mod:`iai.core.flops`.

For each regime that has both an iterative and a one-shot learned run in a family, both read n
points (the iterative one in ceil(n / B) steps of B, the one-shot one in a single step of n) at
each n in ``bench.sizes``, and we measure:

- ``wall_time_s``: seconds for the whole rollout (every step and the final prediction), after one
  warm-up run, averaged over ``bench.repeats`` repeats (``sem`` over repeats);
- ``peak_memory_mb``: the peak memory above what was in use before the rollout. On CUDA this is
  the allocator's peak (``torch.cuda.max_memory_allocated``); on Linux CPUs it is the process's
  resident-set high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``); elsewhere NaN.

Attention over a context of n tokens costs O(n^2) time and memory, so one shot over n points costs
O(n^2) while K = n / B iterative steps cost O(K B^2) = O(n B): the claim is a ratio of about K.
Tasks are sampled fresh (cost does not depend on the data), so n may exceed the banks' size.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from iai.core.flops import rollout_flops, step_flops
from iai.stages.bench import cost, table, train
from iai.stages.bench.cost import (
    bench_cost,
    claim_cost_scaling,
    compiled_step,
    loglog_slope,
    plot_cost,
)
from iai.stages.bench.table import bench_family
from iai.stages.bench.timing import measure
from iai.stages.bench.train import bench_train
from iai.utils import write_json

__all__ = ["bench_cost", "bench_family", "bench_train", "claim_cost_scaling", "compiled_step", "loglog_slope",
           "measure", "plot_cost", "rollout_flops", "step_flops"]


def cli_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", nargs="?", default="table", choices=("table", "cost", "train"),
                   help="table (default): the results-table cost rows of a family's trained pairs (the "
                        "pipeline's call); cost: time, memory and FLOPs against n up to --max-n (JSON and PNG); "
                        "train: meta-training throughput per regime (JSON)")
    p.add_argument("--params", default=None, help="params YAML file (table: required; cost/train: the model "
                   "section and B of the default recipe, params/default.yaml, when absent)")
    p.add_argument("--family", default=None, help="family name from the params (table: required)")
    p.add_argument("--models", default="data/models", help="checkpoint folder (default: data/models)")
    p.add_argument("--device", default=None, help="auto, cpu or cuda (default: the params' device; cost/train: auto)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's default; train: 1)")
    p.add_argument("--untrained", action="store_true",
                   help="build the learners untrained from the params (cost depends on the architecture only)")
    p.add_argument("--sizes", type=int, nargs="+",
                   help="dataset sizes (default: bench.sizes; cost: 256 .. --max-n)")
    p.add_argument("--max-n", type=int, default=65536, help="cost: the largest n (doubling from 256)")
    p.add_argument("--tasks", type=int, default=8, help="cost: tasks per rollout (default 8)")
    p.add_argument("--repeats", type=int, default=3, help="cost: timed repeats while they fit 4 s (medians)")
    p.add_argument("--time-cap", type=float, default=60.0,
                   help="cost: skip one shot past this many seconds (extrapolated as n^2)")
    p.add_argument("--memory-cap", type=float, default=8192.0, help="cost: skip one shot past this many MB")
    p.add_argument("--iterative-threads", type=int, default=0,
                   help="cost: CPU threads of the iterative rollouts (default: torch's default, as one shot)")
    p.add_argument("--compile", action="store_true",
                   help="cost: run both sides' steps torch.compile'd (one graph per one-shot n; default: both eager)")
    p.add_argument("--iterations", type=int, default=20, help="train: timed iterations per run")
    p.add_argument("--compare", action="store_true",
                   help="train: also time the step-by-step path (steps_at_once false, per-parameter AdamW) "
                        "side by side")
    p.add_argument("--sampler", choices=("rollout", "pool"), default=None,
                   help="train: override train.sampler (default: the runs' own)")
    p.add_argument("--figure", default=None, help="cost: PNG path (default: the --out path with .png)")
    p.add_argument("--out", default=None, help="table: cost rows (CSV; a summary JSON beside it); cost/train: JSON")
    p.add_argument("--recipe", default=None, help="a digest of the settings measured (the workflow's), kept in the "
                   "JSON: a later run of other settings tells a committed benchmark is not its own")


def cli_main(args: argparse.Namespace) -> None:
    from iai.utils import ConfigError

    if args.what == "table":
        if not (args.params and args.family and args.out):
            raise ConfigError("bench: --params, --family and --out are required (or use `iai bench cost` / `train`)")
        return table.table_main(args)
    start = time.perf_counter()
    out = Path(args.out or f"bench_{args.what}.json")
    if args.what == "cost":
        if args.threads:
            torch.set_num_threads(args.threads)
        sizes = args.sizes or [n for n in cost.COST_SIZES + [2**i for i in range(17, 21)] if n <= args.max_n]
        result = cost.bench_cost(args.params, args.family, sizes, n_tasks=args.tasks, repeats=args.repeats,
                            device=args.device or "auto", time_cap_s=args.time_cap, memory_cap_mb=args.memory_cap,
                            threads=args.threads, iterative_threads=args.iterative_threads,
                            compiled=args.compile)
        figure = Path(args.figure) if args.figure else out.with_suffix(".png")
        cost.plot_cost(result, figure)
        for regime, r in result["regimes"].items():
            print(f"{regime}: {r['iterative']} vs {r['one_shot']}")
            print(f"{'n':>7} {'iter s':>9} {'1shot s':>9} {'iter MB':>8} {'1shot MB':>9} {'GFLOP it':>9} "
                  f"{'GFLOP 1s':>9}")
            for i, n in enumerate(result["n"]):
                os_s, os_mb = r["one_shot_s"][i], r["one_shot_peak_mb"][i]
                print(f"{n:>7} {r['iterative_s'][i]:>9.4f} {'null' if os_s is None else f'{os_s:.4f}':>9} "
                      f"{r['iterative_peak_mb'][i]:>8.1f} {'null' if os_mb is None else f'{os_mb:.1f}':>9} "
                      f"{r['iterative_flops'][i] / 1e9:>9.3f} {r['one_shot_flops'][i] / 1e9:>9.1f}")
            print("claim 6:", {k: (round(v, 3) if isinstance(v, float) else v)
                               for k, v in result["claim6"]["regimes"][regime].items()})
    else:
        result = train.bench_train(args.params, args.family, args.iterations, args.device or "auto", args.threads or 1,
                             sampler=args.sampler, compare=args.compare)
    result["duration_s"] = round(time.perf_counter() - start, 2)
    if args.recipe:
        result["recipe"] = args.recipe
    write_json(out, result)
    print(f"wrote {out}" + (f" and {figure}" if args.what == "cost" else ""))
