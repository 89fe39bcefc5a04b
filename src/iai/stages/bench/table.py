"""``iai bench`` (the table): wall time and peak memory of a family's trained iterative learners
against their one-shot counterparts, as results-table cost rows (the pipeline's call)."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from iai.core.learners import describe, load_run
from iai.core.plan import cost_pairs
from iai.core.results import to_frame, write
from iai.core.tasks import build_family
from iai.params import Params, load_params
from iai.stages.bench.timing import measure
from iai.utils import derive_seed, describe_device, resolve_device, write_json


def bench_family(params: Params, family_name: str, models_dir: str | Path | None = "data/models",
                 device: str = "cpu", sizes: list[int] | None = None) -> list[dict]:
    """Cost rows (results-table columns) for every (iterative, one-shot) pair of a family, at
    ``sizes`` (default: bench.sizes), over bench.tasks tasks, bench.repeats timed repeats.

    With ``models_dir=None`` the learners are built untrained from their run configs: cost depends
    on the architecture and the sizes alone, so this measures a machine without training first.
    """
    from iai.core.learners import build_learner

    dev = resolve_device(device)
    family, _ = build_family(params.family(family_name))
    sizes = sizes or params.bench.sizes
    n_tasks, repeats = params.bench.tasks, params.bench.repeats
    rows = []
    for pair in cost_pairs(params, family_name):
        for name in pair:
            if models_dir is None:
                learner = build_learner(params.run(family_name, name), family).to(dev).eval()
            else:
                learner = load_run(params, family_name, name, Path(models_dir), family, dev)
            for n in sizes:
                seed = derive_seed(params.seed, "bench", family_name, n)
                tasks = family.sample(n_tasks, n, 16, seed)
                b = learner.batch_size if learner.mode == "iterative" else n
                steps = math.ceil(n / b)
                for metric, (value, sem) in measure(learner, family, tasks, b, dev, repeats).items():
                    rows.append({"family": family_name, "kind": family.kind, "dim": family.dim, "split": "id",
                                 **describe(learner), "context": "all", "batch_size": b, "n_train": n,
                                 "step": steps, "n_seen": n, "metric": metric, "value": value, "sem": sem,
                                 "n_tasks": n_tasks, "seed": seed})
    return rows


def table_main(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    device = args.device or params.device
    df = to_frame(bench_family(params, args.family, None if args.untrained else args.models, device, args.sizes))
    write(df, args.out)
    write_json(Path(args.out).with_suffix(".json"), {
        "stage": "bench", "family": args.family, "rows": len(df), "device": str(resolve_device(device)),
        "device_name": describe_device(resolve_device(device)), "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "threads": torch.get_num_threads(),
        "duration_s": round(time.perf_counter() - start, 3), **({"recipe": args.recipe} if args.recipe else {})})
    print(f"wrote {args.out} ({len(df)} rows)")
