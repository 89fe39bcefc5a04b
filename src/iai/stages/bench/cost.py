"""``iai bench cost``: wall time, peak memory and counted FLOPs of each regime's iterative learner
against its one-shot twin as n doubles (untrained learners: cost depends on the architecture and the
sizes alone); the JSON claim 6 is judged on (``iai.analysis.cost``), and its figure."""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import torch

from iai.core.fit import loglog_slope
from iai.core.flops import rollout_flops
from iai.core.plan import cost_pairs
from iai.core.tasks import build_family
from iai.params import load_params
from iai.stages.bench.timing import timed
from iai.utils import atomic_path, derive_seed, describe_device, resolve_device

log = logging.getLogger(__name__)

COST_SIZES = [2**i for i in range(8, 17)]  # 256 ... 65,536
# the default recipe's cost pairs (params/default.yaml), used when no params file is at hand
DEFAULT_PAIRS = {
    "parametric": ({"regime": "parametric", "signal": "obs"},
                   {"regime": "parametric", "signal": "obs", "mode": "one_shot"}),
    "implicit": ({"regime": "implicit", "state": "logits"}, {"regime": "implicit", "mode": "one_shot"}),
    "explicit": ({"regime": "explicit", "signal": "both", "nominal": True},
                 {"regime": "explicit", "signal": "obs", "mode": "one_shot"}),
}


def cost_setup(params_file: str | None, family_name: str | None):
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
        model, train = params.raw["model"], params.raw["train"]
    else:
        model, train = {}, {}
    family = make_family("linear_regression", dim=8, noise_std=0.5)
    train = {"batch_size": train.get("batch_size", 16), "max_steps": train.get("max_steps", 8)}
    learners = {r: tuple(build_learner(RunSpec("f", f"{r}_{spec.get('mode', 'iterative')}", spec, model, train),
                                       family).eval() for spec in pair)
                for r, pair in DEFAULT_PAIRS.items()}
    return family, learners, train["batch_size"], path or "built-in default recipe"


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
      more than EAGER_WARMUP_MAX_S = 1 s, where a first call's overhead is lost in the run). Its
      seconds are ``iterative_warmup_s`` / ``one_shot_warmup_s`` (a list per n, null where none ran);
      ``iterative_compile_s`` is the first one when compiled.

    Per regime the JSON also holds the counted FLOPs of each side per n (all tasks):
    ``*_attention_flops`` (QK^T and AV) and ``*_flops`` (attention plus dense; :func:`rollout_flops`).
    ``claim6`` holds descriptive numbers (:func:`claim_cost_scaling`); the verdict is
    ``iai.analysis.cost.judge_cost`` (the report's).
    """
    dev = resolve_device(device)
    sizes = sorted(sizes or COST_SIZES)
    family, learners, b, source = cost_setup(family_name=family_name, params_file=params_file)
    out = {"n": sizes, "batch_size": b, "n_tasks": n_tasks, "n_query": n_query, "device": str(dev),
           "device_name": describe_device(dev), "date": time.strftime("%Y-%m-%d", time.gmtime()),
           "threads_one_shot": threads or torch.get_num_threads(),
           "threads_iterative": iterative_threads or torch.get_num_threads(), "source": source,
           "family": family.params(),
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
                    (secs,), _ = timed(learner, family, tasks.head(pts), bs, dev, 1, thr, step_fns[kind])
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
                        timed(it, family, tasks.head(min(n, 4 * b)), min(b, n), dev, 1, iterative_threads)
                    (secs,), _ = timed(learner, family, tasks.head(pts), bs, dev, 1, thr)
                if kind == "iterative" and step_fns[kind] is not None and rec["iterative_compile_s"] is None:
                    rec["iterative_compile_s"] = round(secs, 2)
                warm[kind].add(shape)
            rec[f"{kind}_warmup_s"].append(secs)
        for kind, learner, bs, thr in sides:
            times, mb = timed(learner, family, tasks, bs, dev, 1, thr, step_fns[kind])
            more = min(repeats - 1, int(budget_s / max(times[0], 1e-9)))
            if more > 0:
                t2, mb2 = timed(learner, family, tasks, bs, dev, more, thr, step_fns[kind])
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
            s11 = sum(n * n for n, _ in pts)
            s12 = sum(n ** 3 for n, _ in pts)
            s22 = sum(n ** 4 for n, _ in pts)
            y1 = sum(n * t for n, t in pts)
            y2 = sum(n * n * t for n, t in pts)
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
