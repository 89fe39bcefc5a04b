"""``iai bench``: wall time and peak memory of an iterative learner against its one-shot counterpart.

For each regime that has both an iterative and a one-shot learned run in a family, both read n
points (the iterative one in ceil(n / B) steps of B, the one-shot one in a single step of n) at
each n in ``evaluate.cost_sizes``, and we measure:

- ``wall_time_s``: seconds for the whole rollout (every step and the final prediction), after one
  warm-up run, averaged over ``evaluate.cost_repeats`` repeats (``sem`` over repeats);
- ``peak_memory_mb``: the peak memory above what was in use before the rollout. On CUDA this is
  the allocator's peak (``torch.cuda.max_memory_allocated``); on Linux CPUs it is the process's
  resident-set high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``); elsewhere NaN.

Attention over a context of n tokens costs O(n^2) time and memory, so one shot over n points costs
O(n^2) while K = n / B iterative steps cost O(K B^2) = O(n B): the claim is a ratio of about K.
Tasks are sampled fresh (cost does not depend on the data), so n may exceed the banks' size.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import re
import statistics
import time
from pathlib import Path

import torch

from iai.core.learners import describe, load_run
from iai.core.tasks import build_family
from iai.params import Params, load_params
from iai.core.results import COLUMNS, to_frame, write
from iai.core.rollout import rollout
from iai.utils import derive_seed, describe_device, resolve_device, write_json

_STATUS = Path("/proc/self/status")


def _rss_mb(key: str) -> float:
    match = re.search(rf"{key}:\s+(\d+) kB", _STATUS.read_text())
    return int(match.group(1)) / 1024 if match else math.nan


def _reset_peak(device: torch.device) -> float:
    """Reset the peak counter; return memory in use now (MB)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / 2**20
    try:
        # give freed heap back to the OS first, or the next run reuses it and its peak is invisible
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return _rss_mb("VmRSS")
    except OSError:
        return math.nan


def _peak(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    return _rss_mb("VmHWM") if _STATUS.exists() else math.nan


def measure(learner, family, tasks, batch_size: int, device: torch.device, repeats: int) -> dict:
    """Mean wall time (and its sem over repeats) and peak extra memory of one full rollout."""
    def run():
        rollout(learner, family, tasks, batch_size, steps="last", device=device)

    run()  # warm-up: first-call allocations and kernel selection stay out of the numbers
    times, peaks = [], []
    for _ in range(repeats):
        base = _reset_peak(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
        peaks.append(_peak(device) - base)
    sem = statistics.stdev(times) / math.sqrt(repeats) if repeats > 1 else math.nan
    return {"wall_time_s": (statistics.mean(times), sem), "peak_memory_mb": (max(peaks), math.nan)}


def cost_pairs(params: Params, family_name: str) -> list[tuple[str, str]]:
    """(iterative run, one-shot run) of the same regime, the first of each in params order."""
    runs = [r for r in params.runs if r.family == family_name]
    pairs = []
    for regime in ("parametric", "implicit", "explicit"):
        it = next((r.name for r in runs if r.regime == regime and r.mode == "iterative"), None)
        one = next((r.name for r in runs if r.regime == regime and r.mode == "one_shot"), None)
        if it and one:
            pairs.append((it, one))
    return pairs


def bench_family(params: Params, family_name: str, models_dir: str | Path | None = "data/models",
                 device: str = "cpu", sizes: list[int] | None = None) -> list[dict]:
    """Cost rows (results-table columns) for every (iterative, one-shot) pair of a family.

    With ``models_dir=None`` the learners are built untrained from their run configs: cost depends
    on the architecture and the sizes alone, so this measures a machine without training first.
    """
    from iai.core.learners import build_learner

    dev = resolve_device(device)
    family, _ = build_family(params.family(family_name))
    ev = params.evaluate
    sizes = sizes or ev.get("cost_sizes", [64, 256, 1024])
    n_tasks, repeats = ev.get("cost_tasks", 8), ev.get("cost_repeats", 3)
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


def cli_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", required=True, help="params YAML file")
    p.add_argument("--family", required=True, help="family name from the params")
    p.add_argument("--models", default="data/models", help="checkpoint folder (default: data/models)")
    p.add_argument("--device", default=None, help="auto, cpu or cuda (default: the params' device)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's default)")
    p.add_argument("--untrained", action="store_true",
                   help="build the learners untrained from the params (cost depends on the architecture only)")
    p.add_argument("--sizes", type=int, nargs="+", help="dataset sizes (default: evaluate.cost_sizes)")
    p.add_argument("--out", required=True, help="cost rows (CSV); a summary JSON is written beside it")


def cli_main(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    device = args.device or params.device
    df = to_frame([{c: r[c] for c in COLUMNS} for r in bench_family(params, args.family, None if args.untrained else args.models, device, args.sizes)])
    write(df, args.out)
    write_json(Path(args.out).with_suffix(".json"), {
        "stage": "bench", "family": args.family, "rows": len(df), "device": str(resolve_device(device)),
        "device_name": describe_device(resolve_device(device)), "threads": torch.get_num_threads(), "duration_s": round(time.perf_counter() - start, 3)})
    print(f"wrote {args.out} ({len(df)} rows)")
