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
import logging
import math
import re
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import torch

from iai.core.learners import describe, load_run
from iai.core.learners.backbone import SetTransformer
from iai.core.tasks import build_family
from iai.params import Params, load_params
from iai.core.results import to_frame, write
from iai.core.rollout import rollout
from iai.core.training import TaskPool, TrainConfig, train_iteration, uses_pool
from iai.utils import atomic_path, derive_seed, describe_device, resolve_device, write_json

log = logging.getLogger(__name__)
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


# the evaluate keys bench_family reads (the workflow reruns the bench job when one of them changes)
TABLE_KEYS = ("cost_sizes", "cost_tasks", "cost_repeats")


def bench_family(params: Params, family_name: str, models_dir: str | Path | None = "data/models",
                 device: str = "cpu", sizes: list[int] | None = None) -> list[dict]:
    """Cost rows (results-table columns) for every (iterative, one-shot) pair of a family.

    With ``models_dir=None`` the learners are built untrained from their run configs: cost depends
    on the architecture and the sizes alone, so this measures a machine without training first.
    """
    from iai.core.learners import build_learner

    dev = resolve_device(device)
    family, _ = build_family(params.family(family_name))
    ev = {k: v for k, v in params.evaluate.items() if k in TABLE_KEYS}
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


def _table_main(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    device = args.device or params.device
    df = to_frame(bench_family(params, args.family, None if args.untrained else args.models, device, args.sizes))
    write(df, args.out)
    write_json(Path(args.out).with_suffix(".json"), {
        "stage": "bench", "family": args.family, "rows": len(df), "device": str(resolve_device(device)),
        "device_name": describe_device(resolve_device(device)), "threads": torch.get_num_threads(), "duration_s": round(time.perf_counter() - start, 3)})
    print(f"wrote {args.out} ({len(df)} rows)")


# ---------------------------------------------------------------------------- `iai bench cost`

COST_SIZES = [2**i for i in range(8, 17)]  # 256 ... 65,536
# the default recipe's cost pairs (params/default.yaml), used when no params file is at hand
DEFAULT_PAIRS = {
    "parametric": ({"regime": "parametric", "signal": "obs"}, {"regime": "parametric", "signal": "obs", "mode": "one_shot"}),
    "implicit": ({"regime": "implicit", "state": "logits"}, {"regime": "implicit", "mode": "one_shot"}),
    "explicit": ({"regime": "explicit", "signal": "both", "nominal": True},
                 {"regime": "explicit", "signal": "obs", "mode": "one_shot"}),
}


def step_flops(learner, n_points: int, n_query: int) -> dict[str, int]:
    """Counted FLOPs of one step of a learned learner, per task: ``attention`` (QK^T and AV) and
    ``dense`` (every linear layer of the step network: token embeddings, q/kv/out, feed-forward, head).

    Counted from the architecture (2 FLOPs per multiply-add): with S tokens of which C are context,
    width W, feed-forward F and depth L, a block costs 4 S C W in attention and 4 S W^2 + 4 C W^2 +
    4 S W F in dense layers; the last block updates only the R tokens the heads read (the state
    tokens, or the queries: ``SetTransformer(outputs=...)``), so there S becomes R.
    ``torch.utils.flop_counter`` counts no attention on CPU (the
    CPU flash kernel is not in its registry), so it is used only to check the dense part and, with
    the math attention backend, the whole (tests/test_bench.py).
    """
    m = learner.model_cfg
    w, f, depth = m.width, m.ff, m.depth
    if learner.regime == "implicit":
        q_dim = learner.backbone.embed["query"].in_features
        groups = {"obs": (n_points, learner.family.in_dim + learner.family.out_dim), "query": (n_query, q_dim)}
        s, c, r = n_points + n_query, n_points, n_query
        head = 2 * n_query * w * learner.state_dim
    else:
        k, e = learner.n_units, learner.unit_dim
        dims = {name: lin.in_features for name, lin in learner.backbone.embed.items()}
        sizes = {"state": k, "grad": k, "memory": learner.cfg.memory, "history": learner.history * k, "obs": n_points}
        groups = {name: (sizes[name], dims[name]) for name in dims}
        s = c = sum(n for n, _ in groups.values())
        # the rows the heads read: the state tokens, and with memory the gradient tokens before them (if
        # they are their own group) and the memory tokens
        r = k + (sizes["grad"] * ("grad" in dims) + learner.cfg.memory if learner.cfg.memory else 0)
        head = 2 * k * w * e + 2 * learner.cfg.memory * w * e
    if not learner.backbone.prune:
        r = s
    embed = sum(2 * n * d * w for n, d in groups.values())

    def block(rows: int) -> int:
        return 2 * rows * w * w * 2 + 4 * c * w * w + 4 * rows * w * f

    dense = embed + (depth - 1) * block(s) + block(r) + head
    return {"attention": 4 * c * w * ((depth - 1) * s + r), "dense": dense}


def rollout_flops(learner, n: int, n_query: int) -> dict[str, int]:
    """FLOPs per task of a whole rollout over n points (ceil(n / B) steps, or one step of n)."""
    b = learner.batch_size if learner.mode == "iterative" else n
    full, rest = divmod(n, b)
    out = {k: v * full for k, v in step_flops(learner, b, n_query).items()}
    if rest:
        out = {k: out[k] + v for k, v in step_flops(learner, rest, n_query).items()}
    return out


def _cost_setup(params_file: str | None, family_name: str | None):
    """(family, {regime: (iterative learner, one-shot learner)}, B, where from) for ``iai bench cost``."""
    from iai.core.learners import build_learner
    from iai.core.tasks import make_family
    from iai.params import RunSpec

    path = params_file or ("params/default.yaml" if Path("params/default.yaml").exists() else None)
    if path:
        params = load_params(path)
        names = [f for f in params.families if params.family(f).kind == "linear_regression"]
        family_name = family_name or (names[0] if names else next(iter(params.families)))
        family, _ = build_family(params.family(family_name))
        pairs = cost_pairs(params, family_name)
        runs = {params.run(family_name, it).regime: (params.run(family_name, it), params.run(family_name, one))
                for it, one in pairs}
        if runs:
            learners = {r: tuple(build_learner(run, family).eval() for run in pair) for r, pair in runs.items()}
            return family, learners, next(iter(learners.values()))[0].batch_size, f"{path} ({family_name})"
        model, train = params.model, params.train
    else:
        model, train = {}, {}
    family = make_family("linear_regression", dim=8, noise_std=0.5)
    train = {"batch_size": train.get("batch_size", 16), "max_steps": train.get("max_steps", 8)}
    learners = {r: tuple(build_learner(RunSpec("f", f"{r}_{spec.get('mode', 'iterative')}", spec, model, train),
                                       family).eval() for spec in pair)
                for r, pair in DEFAULT_PAIRS.items()}
    return family, learners, train["batch_size"], path or "built-in default recipe"


def _timed(learner, family, tasks, batch_size, dev, repeats, threads, step_fn=None) -> tuple[list[float], float]:
    """(seconds of each of ``repeats`` full rollouts, their peak extra MB) on ``threads`` CPU threads."""
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        times, peaks = [], []
        for _ in range(repeats):
            base = _reset_peak(dev)
            start = time.perf_counter()
            rollout(learner, family, tasks, batch_size, steps="last", device=dev, step_fn=step_fn)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times.append(time.perf_counter() - start)
            peaks.append(_peak(dev) - base)
        return times, max(peaks)
    finally:
        torch.set_num_threads(old)


def compiled_step(learner):
    """``learner.step`` compiled for fixed shapes with frozen weights, fed contiguous tensors: one
    graph per learner (theta^(0) is an expanded view, and a pass's short last mini-batch a strided
    one; each would otherwise be a recompile). On CUDA the graph is also captured as a CUDA graph
    and replayed (``triton.cudagraphs``, what ``mode="reduce-overhead"`` sets): a step of 32 tasks
    is a few dozen small kernels, and their launches, not arithmetic, are its cost. A replay
    overwrites the previous one's outputs, so the new state is copied out (a few KB per task)."""
    cuda = any(p.is_cuda for p in learner.parameters())
    # freezing: the weights become constants, so the CPU matmuls use prepacked weights (inference only)
    compiled = torch.compile(learner.step, dynamic=False, options={"freezing": True, "triton.cudagraphs": cuda})

    def step(state, x, y):
        args = ({k: v.contiguous() for k, v in state.items()}, x.contiguous(), y.contiguous())
        if not cuda:
            return compiled(*args)
        torch.compiler.cudagraph_mark_step_begin()
        return {k: v.clone() for k, v in compiled(*args).items()}

    return step


def _recompile_limit(n: int):
    """A context raising torch.compile's per-function graph limit to ``n`` (compiled one shot is one
    graph per n; past the default 8 it would fall back to eager without saying so)."""
    import contextlib

    import torch._dynamo.config as dynamo_config

    names = [k for k in ("recompile_limit", "cache_size_limit") if hasattr(dynamo_config, k)]
    if not names:
        return contextlib.nullcontext()
    return dynamo_config.patch(**{names[0]: max(n, getattr(dynamo_config, names[0]))})


def bench_cost(params_file: str | None = None, family_name: str | None = None, sizes: list[int] | None = None,
               n_tasks: int = 8, n_query: int = 16, repeats: int = 3, device: str = "cpu",
               time_cap_s: float = 60.0, memory_cap_mb: float = 8192.0, threads: int = 0,
               iterative_threads: int = 0, budget_s: float = 4.0, seed: int = 0, compiled: bool = False,
               progress=print) -> dict:
    """Wall time, peak memory and counted FLOPs of each regime's iterative learner against its
    one-shot twin over the same tasks at each n (untrained learners: cost depends on the
    architecture and the sizes alone). One shot is skipped (null) once its time or memory,
    extrapolated as n^2 from the last measured n, would pass the caps. Each measurement is repeated
    up to ``repeats`` times while that fits ``budget_s`` (at least once); every repeat's seconds are
    recorded (``iterative_times_s``, ``one_shot_times_s``: a list per n) and their median is
    ``iterative_s`` / ``one_shot_s``. ``threads`` applies to one shot and ``iterative_threads`` to
    the iterative learner (0: torch's default, so both sides get the same threads).

    Both sides are timed the same way (what claim 6 compares is their ratio):

    - ``compiled`` (default False: both eager; ``iai bench cost --compile``: both compiled): each
      side's step runs :func:`compiled_step` (fixed shapes, frozen weights; on CUDA replayed as a
      CUDA graph), or both run eager. Eager is the default because compiling one shot is a graph
      per n: measured on the 2-core CPU (default recipe, 8 tasks, one thread), each one-shot n took
      15-55 s to compile (about 7 minutes for 9 sizes x 3 regimes) and then ran no faster than eager
      (0.097 s against 0.100 s at n = 1,024, 0.30 s against 0.29 s at n = 2,048; one shot is bound
      by attention); ``dynamic=True`` recompiled per n all the same. Compiling only the iterative
      side, as this command did before, made it 1.5x (CPU) to 2-4x (CUDA graph) faster than its
      eager self and so inflated the ratio. Where compiling fails (no C++ compiler) during the
      first n, both sides run eager and the error is in ``compile_error``; a failure at a later n
      leaves that side eager (``one_shot_compiled`` false), which the claim-6 judge reads as the
      sides not timed the same way.
    - warm-up: before a side is timed at a step shape it has not run yet, it runs once untimed at
      that shape on the same tasks (first-call allocations, kernel selection and, compiled, the
      compile stay out of the numbers). The iterative step's shape is the same at every n (one
      warm-up at the first n, over a few steps); one shot's changes with n (a warm-up at every n,
      which costs one more run of it; eager, it is skipped once one shot's run at the previous n took
      more than EAGER_WARMUP_MAX_S = 1 s, where a first call's overhead is lost in the run). Its seconds are ``iterative_warmup_s`` / ``one_shot_warmup_s``
      (a list per n, null where none ran); ``iterative_compile_s`` is the first one when compiled.

    Per regime the JSON also holds the counted FLOPs of each side per n (all tasks):
    ``*_attention_flops`` (QK^T and AV) and ``*_flops`` (attention plus dense; :func:`rollout_flops`).
    ``claim6`` holds descriptive numbers (:func:`claim_cost_scaling`); the verdict is
    ``iai.analysis.cost.judge_cost`` (the report's).
    """
    dev = resolve_device(device)
    sizes = sorted(sizes or COST_SIZES)
    family, learners, b, source = _cost_setup(family_name=family_name, params_file=params_file)
    out = {"n": sizes, "batch_size": b, "n_tasks": n_tasks, "n_query": n_query, "device": str(dev),
           "device_name": describe_device(dev), "threads_one_shot": threads or torch.get_num_threads(),
           "threads_iterative": iterative_threads or torch.get_num_threads(), "source": source, "family": family.params(),
           "time_cap_s": time_cap_s, "memory_cap_mb": memory_cap_mb, "compiled": bool(compiled),
           "timing": {"compiled": bool(compiled), "repeats": repeats, "budget_s": budget_s, "statistic": "median",
                      "warm_up": "one untimed run at every new step shape of a side (one shot: every n)"},
           "regimes": {}}
    with _recompile_limit(4 * (len(sizes) + 2)):
        for regime, (it, one) in learners.items():
            out["regimes"][regime] = _cost_regime(regime, it.to(dev), one.to(dev), family, sizes, b, n_tasks, n_query,
                                                  repeats, dev, time_cap_s, memory_cap_mb, threads, iterative_threads,
                                                  budget_s, seed, compiled, progress)
    # the top-level lists the issue asks for: the first regime's (every regime is under "regimes")
    first = next(iter(out["regimes"].values()))
    for key in ("iterative_s", "one_shot_s", "iterative_peak_mb", "one_shot_peak_mb"):
        out[key] = first[key]
    out["claim6"] = claim_cost_scaling(out)
    return out


def _cost_regime(regime, it, one, family, sizes, b, n_tasks, n_query, repeats, dev, time_cap_s, memory_cap_mb,
                 threads, iterative_threads, budget_s, seed, compiled, progress) -> dict:
    """One regime of :func:`bench_cost`: both sides at every n."""
    keys = ("iterative_s", "one_shot_s", "iterative_times_s", "one_shot_times_s", "iterative_warmup_s",
            "one_shot_warmup_s", "iterative_peak_mb", "one_shot_peak_mb", "iterative_flops", "one_shot_flops",
            "iterative_attention_flops", "one_shot_attention_flops")
    rec = {k: [] for k in keys}
    rec.update(iterative=it.name, one_shot=one.name, model=asdict(it.model_cfg), iterative_compiled=bool(compiled),
               one_shot_compiled=bool(compiled), iterative_compile_s=None, compile_error=None)
    step_fns = {"iterative": compiled_step(it) if compiled else None,
                "one_shot": compiled_step(one) if compiled else None}
    warm: dict[str, set] = {"iterative": set(), "one_shot": set()}
    last_one = None  # (n, seconds, MB) of the last one-shot measurement
    for idx, n in enumerate(sizes):
        tasks = family.sample(n_tasks, n, n_query, derive_seed(seed, "bench-cost", regime, n))
        sides = []
        for kind, learner, bs, thr in (("iterative", it, b, iterative_threads), ("one_shot", one, n, threads)):
            flops = rollout_flops(learner, n, n_query)
            rec[f"{kind}_flops"].append(n_tasks * (flops["attention"] + flops["dense"]))
            rec[f"{kind}_attention_flops"].append(n_tasks * flops["attention"])
            if kind == "one_shot" and last_one is not None:
                grow = (n / last_one[0]) ** 2
                if last_one[1] * grow > time_cap_s or last_one[2] * grow > memory_cap_mb or last_one[1] < 0:
                    for key in ("one_shot_s", "one_shot_times_s", "one_shot_warmup_s", "one_shot_peak_mb"):
                        rec[key].append(None)
                    last_one = (last_one[0], -1.0, last_one[2])  # skip every larger n too
                    continue
            sides.append((kind, learner, min(bs, n), thr))
        # warm-up: an untimed run at each step shape a side has not run yet (the iterative step's is the
        # same at every n but for a short last batch; one shot's is n), on the same tasks
        for kind, learner, bs, thr in sides:
            shape = n % bs if kind == "iterative" else n
            secs = None
            if (kind == "one_shot" and step_fns[kind] is None and last_one is not None
                    and last_one[1] > EAGER_WARMUP_MAX_S):
                warm[kind].add(shape)  # eager and long: a first call's overhead is lost in the run itself
            if shape not in warm[kind]:
                pts = n if kind == "one_shot" or n <= 4 * bs else 3 * bs + (n % bs or bs)
                try:
                    (secs,), _ = _timed(learner, family, tasks.head(pts), bs, dev, 1, thr, step_fns[kind])
                except Exception as err:  # noqa: BLE001 - any compiler failure: time eager instead
                    if step_fns[kind] is None:
                        raise
                    log.warning("torch.compile failed for %s (%s); timing it eager", learner.name, err)
                    rec["compile_error"] = rec["compile_error"] or f"{type(err).__name__}: {err}"[:300]
                    # during the first n both sides fall back, so that they stay timed the same way
                    for side in (("iterative", "one_shot") if idx == 0 else (kind,)):
                        step_fns[side] = None
                        rec[f"{side}_compiled"] = False
                    if idx == 0 and kind == "one_shot":  # the iterative side was warmed compiled: warm it eager
                        rec["iterative_compile_s"] = None
                        _timed(it, family, tasks.head(min(n, 4 * b)), min(b, n), dev, 1, iterative_threads)
                    (secs,), _ = _timed(learner, family, tasks.head(pts), bs, dev, 1, thr)
                if kind == "iterative" and step_fns[kind] is not None and rec["iterative_compile_s"] is None:
                    rec["iterative_compile_s"] = round(secs, 2)
                warm[kind].add(shape)
            rec[f"{kind}_warmup_s"].append(secs)
        for kind, learner, bs, thr in sides:
            times, mb = _timed(learner, family, tasks, bs, dev, 1, thr, step_fns[kind])
            more = min(repeats - 1, int(budget_s / max(times[0], 1e-9)))
            if more > 0:
                t2, mb2 = _timed(learner, family, tasks, bs, dev, more, thr, step_fns[kind])
                times, mb = times + t2, max(mb, mb2)
            secs = statistics.median(times)
            rec[f"{kind}_s"].append(secs)
            rec[f"{kind}_times_s"].append(times)
            rec[f"{kind}_peak_mb"].append(mb)
            if kind == "one_shot":
                last_one = (n, secs, max(mb, 1.0))
        progress(f"bench cost {regime} n={n}: iterative {rec['iterative_s'][-1]:.4g} s, one shot "
                 f"{rec['one_shot_s'][-1] if rec['one_shot_s'][-1] is None else round(rec['one_shot_s'][-1], 4)} s")
    return rec


EAGER_WARMUP_MAX_S = 1.0  # eager one shot is not warmed at an n once its run at the previous n took longer


def loglog_slope(n: list[float], t: list[float]) -> float:
    """Least-squares slope of log t against log n (NaN with fewer than two points)."""
    pts = [(math.log(a), math.log(b)) for a, b in zip(n, t) if a and b and b > 0]
    if len(pts) < 2:
        return math.nan
    mx = statistics.fmean(x for x, _ in pts)
    my = statistics.fmean(y for _, y in pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else math.nan


def claim_cost_scaling(result: dict, fit_range: tuple[int, int] = (1024, 16384), at_n: int = 16384,
                       min_speedup: float = 10.0, min_memory_ratio: float = 30.0, max_slope: float = 1.15,
                       min_slope_gap: float = 0.3) -> dict:
    """Claim 6 judged on an ``iai bench cost`` result (pure Python on its JSON; no torch needed).

    Per regime: the log-log slopes of wall time against n over ``fit_range`` (iterative and one
    shot), the one-shot / iterative time ratio at the largest n where both ran, next to K = n / B
    (the ratio of their attention costs' orders), the memory ratio there, and the crossovers for the
    recipe's width: the context length where a step's attention FLOPs equal its dense FLOPs
    (analytic, n* = (2 W + F) (1 + C/S)^-1 ... taken from the counted FLOPs, so the same on every
    device), and on this device the n where one shot's fitted time a n + c n^2 turns quadratic
    (a / c) and the smallest measured n where one shot is slower than iterating.
    ``holds`` applies the issue's bar at ``at_n``: ratio >= min_speedup, memory ratio >=
    min_memory_ratio, iterative slope <= max_slope and one-shot slope >= iterative + min_slope_gap.
    These are descriptive numbers of the run; claim 6's verdict is ``iai.analysis.cost.judge_cost``.
    """
    out = {"device": result.get("device_name", result.get("device")), "batch_size": result["batch_size"],
           "fit_range": list(fit_range), "regimes": {}}
    b = result["batch_size"]
    ns = result["n"]
    for regime, r in result["regimes"].items():
        lo, hi = fit_range
        sel = [i for i, n in enumerate(ns) if lo <= n <= hi]
        s_it = loglog_slope([ns[i] for i in sel], [r["iterative_s"][i] for i in sel])
        sel_os = [i for i in sel if r["one_shot_s"][i] is not None]
        s_os = loglog_slope([ns[i] for i in sel_os], [r["one_shot_s"][i] for i in sel_os])
        both = [i for i, t in enumerate(r["one_shot_s"]) if t is not None]
        last = both[-1] if both else None
        at = ns.index(at_n) if at_n in ns and r["one_shot_s"][ns.index(at_n)] is not None else None

        def ratio(key_os, key_it, i):
            if i is None or not r[key_it][i]:
                return None
            return r[key_os][i] / r[key_it][i] if r[key_it][i] > 0 else None

        # where a one-shot step's attention FLOPs pass its dense FLOPs (device independent)
        flop_cross = next((n for n, a, t in zip(ns, r["one_shot_attention_flops"], r["one_shot_flops"])
                           if a >= t - a), None)
        # one shot's time fitted as a n + c n^2 (least squares through the origin) on this device
        pts = [(ns[i], r["one_shot_s"][i]) for i in both]
        time_cross = None
        if len(pts) >= 2:
            s11 = sum(n * n for n, _ in pts); s12 = sum(n ** 3 for n, _ in pts); s22 = sum(n ** 4 for n, _ in pts)
            y1 = sum(n * t for n, t in pts); y2 = sum(n * n * t for n, t in pts)
            det = s11 * s22 - s12 * s12
            if det:
                a, c = (y1 * s22 - y2 * s12) / det, (s11 * y2 - s12 * y1) / det
                time_cross = a / c if a > 0 and c > 0 else None
        faster = next((ns[i] for i in both if r["one_shot_s"][i] > r["iterative_s"][i]), None)
        rec = {"slope_iterative": s_it, "slope_one_shot": s_os,
               "largest_n_both": ns[last] if last is not None else None,
               "K_at_largest": ns[last] / b if last is not None else None,
               "time_ratio_at_largest": ratio("one_shot_s", "iterative_s", last),
               "memory_ratio_at_largest": ratio("one_shot_peak_mb", "iterative_peak_mb", last),
               "flop_ratio_at_largest": ratio("one_shot_flops", "iterative_flops", last),
               "attention_flop_ratio_at_largest": ratio("one_shot_attention_flops", "iterative_attention_flops", last),
               f"time_ratio_at_{at_n}": ratio("one_shot_s", "iterative_s", at),
               f"memory_ratio_at_{at_n}": ratio("one_shot_peak_mb", "iterative_peak_mb", at),
               "attention_crossover_n_flops": flop_cross, "one_shot_quadratic_crossover_n_time": time_cross,
               "one_shot_slower_from_n": faster}
        tr, mr = rec[f"time_ratio_at_{at_n}"], rec[f"memory_ratio_at_{at_n}"]
        rec["holds"] = bool(tr is not None and tr >= min_speedup and mr is not None and mr >= min_memory_ratio
                            and s_it <= max_slope and s_os >= s_it + min_slope_gap)
        out["regimes"][regime] = rec
    out["holds"] = bool(out["regimes"]) and all(r["holds"] for r in out["regimes"].values())
    return out


def plot_cost(result: dict, path: str | Path) -> None:
    """Time and peak memory against n, iterative (solid) vs one shot (dashed), log-log; a PNG."""
    import os
    import tempfile

    # matplotlib's font cache in the temp dir, as iai.analysis.plotting does: not beside the figure,
    # where it would land in a DVC-hashed output
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(tempfile.gettempdir(), "iai-matplotlib"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ns = result["n"]
    for (regime, r), color in zip(result["regimes"].items(), ("C0", "C1", "C2", "C3")):
        for kind, style in (("iterative", "-"), ("one_shot", "--")):
            for ax, key in zip(axes, ("s", "peak_mb", "flops")):
                ys = r[f"{kind}_{key}"]
                pts = [(n, y) for n, y in zip(ns, ys) if y is not None and y > 0]
                if pts:
                    ax.plot(*zip(*pts), style, color=color, marker="o", ms=3,
                            label=f"{regime} {kind.replace('_', ' ')}")
    for ax, label in zip(axes, ("wall time (s)", "peak memory (MB)", "counted FLOPs")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("n (points read)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"iterative (B = {result['batch_size']}) vs one shot, {result['n_tasks']} tasks, "
                 f"{result['device_name']}", fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # a killed run leaves no half-written figure
        fig.savefig(tmp, dpi=110, format="png", metadata={"Software": None})
    plt.close(fig)


# ---------------------------------------------------------------------------- `iai bench train`

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
    family, learners, _, source = _cost_setup(params_file, family_name)
    peak = next((v for k, v in GPU_PEAK_FLOPS.items() if k in describe_device(dev)), None) if dev.type == "cuda" else None
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


# ---------------------------------------------------------------------------- the command

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
    p.add_argument("--sizes", type=int, nargs="+", help="dataset sizes (default: evaluate.cost_sizes; cost: 256 .. --max-n)")
    p.add_argument("--max-n", type=int, default=65536, help="cost: the largest n (doubling from 256)")
    p.add_argument("--tasks", type=int, default=8, help="cost: tasks per rollout (default 8)")
    p.add_argument("--repeats", type=int, default=3, help="cost: timed repeats while they fit 4 s (medians)")
    p.add_argument("--time-cap", type=float, default=60.0, help="cost: skip one shot past this many seconds (extrapolated as n^2)")
    p.add_argument("--memory-cap", type=float, default=8192.0, help="cost: skip one shot past this many MB")
    p.add_argument("--iterative-threads", type=int, default=0,
                   help="cost: CPU threads of the iterative rollouts (default: torch's default, as one shot)")
    p.add_argument("--compile", action="store_true",
                   help="cost: run both sides' steps torch.compile'd (one graph per one-shot n; default: both eager)")
    p.add_argument("--iterations", type=int, default=20, help="train: timed iterations per run")
    p.add_argument("--compare", action="store_true",
                   help="train: also time the step-by-step path (steps_at_once false, per-parameter AdamW) side by side")
    p.add_argument("--sampler", choices=("rollout", "pool"), default=None,
                   help="train: override train.sampler (default: the runs' own)")
    p.add_argument("--figure", default=None, help="cost: PNG path (default: the --out path with .png)")
    p.add_argument("--out", default=None, help="table: cost rows (CSV; a summary JSON beside it); cost/train: JSON")


def cli_main(args: argparse.Namespace) -> None:
    from iai.utils import ConfigError

    if args.what == "table":
        if not (args.params and args.family and args.out):
            raise ConfigError("bench: --params, --family and --out are required (or use `iai bench cost` / `train`)")
        return _table_main(args)
    start = time.perf_counter()
    out = Path(args.out or f"bench_{args.what}.json")
    if args.what == "cost":
        if args.threads:
            torch.set_num_threads(args.threads)
        sizes = args.sizes or [n for n in COST_SIZES + [2**i for i in range(17, 21)] if n <= args.max_n]
        result = bench_cost(args.params, args.family, sizes, n_tasks=args.tasks, repeats=args.repeats,
                            device=args.device or "auto", time_cap_s=args.time_cap, memory_cap_mb=args.memory_cap,
                            threads=args.threads, iterative_threads=args.iterative_threads,
                            compiled=args.compile)
        figure = Path(args.figure) if args.figure else out.with_suffix(".png")
        plot_cost(result, figure)
        for regime, r in result["regimes"].items():
            print(f"{regime}: {r['iterative']} vs {r['one_shot']}")
            print(f"{'n':>7} {'iter s':>9} {'1shot s':>9} {'iter MB':>8} {'1shot MB':>9} {'GFLOP it':>9} {'GFLOP 1s':>9}")
            for i, n in enumerate(result["n"]):
                os_s, os_mb = r["one_shot_s"][i], r["one_shot_peak_mb"][i]
                print(f"{n:>7} {r['iterative_s'][i]:>9.4f} {'null' if os_s is None else f'{os_s:.4f}':>9} "
                      f"{r['iterative_peak_mb'][i]:>8.1f} {'null' if os_mb is None else f'{os_mb:.1f}':>9} "
                      f"{r['iterative_flops'][i] / 1e9:>9.3f} {r['one_shot_flops'][i] / 1e9:>9.1f}")
            print("claim 6:", {k: (round(v, 3) if isinstance(v, float) else v)
                               for k, v in result["claim6"]["regimes"][regime].items()})
    else:
        result = bench_train(args.params, args.family, args.iterations, args.device or "auto", args.threads or 1,
                             sampler=args.sampler, compare=args.compare)
    result["duration_s"] = round(time.perf_counter() - start, 2)
    write_json(out, result)
    print(f"wrote {out}" + (f" and {figure}" if args.what == "cost" else ""))
