"""Claim 6, "iterating is about K times cheaper than one shot over the same data", judged on the JSON
of ``iai bench cost`` (one device per file).

What the paper says (docs/paper.md section 3): K steps of batch B cost O(K B^2) attention, one shot over
the same K B points costs O((K B)^2), so one shot costs about K = n / B times as much. Two things
follow, and each regime of the benchmark (an iterative learner against its one-shot twin, n
doubling) is held against both:

(a) **counted attention FLOPs** (device independent): the ratio one shot / iterating at the largest
    n where both ran lies within K / ``cost_flop_factor`` .. K * ``cost_flop_factor``;
(b) **measured time**: the ratio R(n) = t_one_shot(n) / t_iterating(n) grows like K, that is like
    n: the log-log slope of R against n is 1. The slope is fitted over the *fit range*, the sizes
    where both ran and where attention dominates one shot's counted FLOPs (its attention share
    >= ``cost_attention_share``), at least :data:`MIN_SIZES` of them. It has a two-sided interval
    at ``level`` (below), and (b) holds when the whole interval lies within 1 +- ``cost_slope_tolerance``.

Why the slope and not R itself: "about K" is an order statement (O(K B^2) against O((K B)^2)); a
device's per-call overhead and its attention kernels' efficiency set the constant in front of each
side's time, so R at one n says little about the paper's claim, while how R grows with n is
exactly what the claim predicts. Why the fit range is read off the counted FLOPs: one shot's
FLOPs are a n + c n^2, whose local log-log slope is 1 + s with s the attention share, and the
iterative side's are linear in n, so where s >= 0.9 the cost model itself predicts a slope of R
of at least 0.9. The range is fixed by the architecture before any timing.

The verdict of a regime (three-valued and symmetric):

- **contradicted** when (a) fails (the counted ratio is outside the band: no interval is needed, the
  count is exact), or when the sides were timed the same way and the slope's interval lies wholly
  outside 1 +- tolerance (R grows clearly slower, or faster, than K);
- **reproduced** when (a) holds, the sides were timed the same way, and the interval lies wholly
  within 1 +- tolerance;
- **inconclusive** otherwise: an interval that straddles a bound, fewer than :data:`MIN_SIZES` sizes
  in the fit range, or a precondition that fails: both sides must have been timed the same way
  (both compiled or both eager, the same CPU threads). The committed GPU runs under docs/gpu (the
  old format) compiled the iterative step only, so their time evidence is inconclusive by this rule,
  and the explanation says so; their counted FLOPs are still judged.

The claim: contradicted when one regime is, reproduced when every regime is, else inconclusive.

The interval of the slope. The slope is the least-squares slope of y_n = mean log t_one_shot(n) -
mean log t_iterating(n) (means over the repeats at n) against log n. Where the JSON records every
repeat (``iterative_times_s``, ``one_shot_times_s``), its variance is the timing noise the repeats
show: each side's within-n variance of log time, pooled over the fit range (relative noise taken as
the same at every n of a side; the budget of ``iai bench cost`` leaves one repeat at the largest n,
where a per-n variance does not exist), propagated through the least-squares weights, and the
interval is Student's t with Satterthwaite's degrees of freedom. A percentile bootstrap over 3
repeats was not used: it has 10 distinct resamples per n and understates the variance by (r - 1)/r,
and per-repeat-index slopes need the same number of repeats at every n, which the budget does not
give. Where a side has no n with two repeats (the old format: medians only), the interval comes
from the scatter of the sizes about the line (residual variance, m - 2 degrees of freedom), which
holds timing noise and any departure from a power law together. Both intervals are reported; the
first is used when it exists (a residual interval much wider than it shows a departure from a
power law). Neither holds the drift between two runs of the benchmark (README: the implicit
learner's R at n = 16,384 ranged from 8.4x to 15.1x over runs on the CPU): the verdict is per run
and per device.

The thresholds (``options``, the params' ``report:`` section; defaults in :data:`DEFAULTS`) are
set from the paper's statement, not from any measurement (they are the values params/default.yaml
pre-registered): ``cost_flop_factor`` 1.5, "about K" read as nearer K than the neighbouring
doublings K/2 and 2K (a factor sqrt 2 = 1.41, rounded up); ``cost_slope_tolerance`` 0.3, "grows like
K" (slope 1) against the nearest slower growth worth naming, like sqrt K (slope 0.5): the lower
bound 0.7 lies just past their midpoint, so an interval wholly below it means R grows nearer like
sqrt K than like K (and symmetrically above 1.3); ``cost_attention_share`` 0.9 (the cost model's
own slope is then within 0.1 of 1, a third of the tolerance); ``level`` 0.95.

On this architecture (counted, so on every device) the implicit regime's attention ratio tends to
K B / (B + 2 q), with q the queries per task (``n_query``, 16 in ``iai bench cost``): its state is
the running prediction of every query, so each step reads the q query tokens again (they attend to
the B points in both blocks; the last block updates only them), and with q = B = 16 that is K / 3,
outside K/1.5..1.5K. The parametric and explicit regimes' ratio tends to 0.84 K (their state tokens).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from iai.params import ReportConfig

_RULES = ReportConfig()  # the params' report defaults; the attention share is this module's own
DEFAULTS = {"cost_flop_factor": _RULES.cost_flop_factor, "cost_slope_tolerance": _RULES.cost_slope_tolerance,
            "cost_attention_share": 0.9, "level": _RULES.level}
MIN_SIZES = 3  # sizes in the fit range: two points give a slope but no check of the line
TITLE = "Iterating is about K times cheaper than one shot over the same data"
VERDICTS = ("reproduced", "contradicted", "inconclusive")


# ---------------------------------------------------------------------------- Student's t (stdlib only)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` (real, > 0) degrees of freedom."""
    if math.isinf(df):
        return 0.5 * math.erfc(-t / math.sqrt(2.0))
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (bisection on :func:`t_cdf`)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------------------- the slope and its interval


def _mean(xs) -> float:
    return sum(xs) / len(xs)


def slope_interval(ns: list[float], iterative: list[list[float]], one_shot: list[list[float]],
                   level: float = 0.95) -> dict:
    """Log-log slope of R = t_one_shot / t_iterating against n, with its two-sided interval.

    ``iterative`` and ``one_shot`` hold, per n, every repeat's seconds (one value where only a
    median is known). Returns ``{"slope", "lo", "hi", "se", "df", "method", "lo_residual",
    "hi_residual", "sizes"}``; ``method`` is ``"repeats"`` (pooled within-n variance of log time,
    Satterthwaite's t) where each side has an n with two repeats, else ``"residuals"`` (the sizes'
    scatter about the line, m - 2 degrees of freedom), or ``None`` (no interval: the bounds are NaN).
    """
    m = len(ns)
    nan = math.nan
    out = {"slope": nan, "lo": nan, "hi": nan, "se": nan, "df": nan, "method": None,
           "lo_residual": nan, "hi_residual": nan, "sizes": m}
    if m < 2:
        return out
    logs_it = [[math.log(t) for t in ts] for ts in iterative]
    logs_os = [[math.log(t) for t in ts] for ts in one_shot]
    x = [math.log(n) for n in ns]
    y = [_mean(o) - _mean(i) for i, o in zip(logs_it, logs_os)]
    xbar, ybar = _mean(x), _mean(y)
    sxx = sum((a - xbar) ** 2 for a in x)
    if sxx <= 0:
        return out
    w = [(a - xbar) / sxx for a in x]
    slope = sum(wi * yi for wi, yi in zip(w, y))
    out["slope"] = slope
    q = (1.0 + level) / 2.0
    if m >= 3:
        resid = [yi - ybar - slope * (a - xbar) for a, yi in zip(x, y)]
        se_r = math.sqrt(sum(r * r for r in resid) / (m - 2) / sxx)
        half = t_quantile(q, m - 2) * se_r
        out["lo_residual"], out["hi_residual"] = slope - half, slope + half

    def pooled(logs):
        ss = sum(sum((v - _mean(ls)) ** 2 for v in ls) for ls in logs if len(ls) > 1)
        df = sum(len(ls) - 1 for ls in logs)
        return (ss / df, df) if df > 0 else (nan, 0)

    var_it, df_it = pooled(logs_it)
    var_os, df_os = pooled(logs_os)
    if df_it > 0 and df_os > 0:
        a = var_os * sum(wi * wi / len(ls) for wi, ls in zip(w, logs_os))
        b = var_it * sum(wi * wi / len(ls) for wi, ls in zip(w, logs_it))
        var = a + b
        if var > 0:
            df = var * var / (a * a / df_os + b * b / df_it)
            se = math.sqrt(var)
            half = t_quantile(q, df) * se
            out.update(lo=slope - half, hi=slope + half, se=se, df=df, method="repeats")
        else:  # identical repeats: no noise seen, the interval is the point
            out.update(lo=slope, hi=slope, se=0.0, df=math.inf, method="repeats")
    elif m >= 3:
        out.update(lo=out["lo_residual"], hi=out["hi_residual"], df=m - 2, method="residuals",
                   se=(out["hi_residual"] - slope) / t_quantile(q, m - 2))
    return out


# ---------------------------------------------------------------------------- the rule


def _options(options) -> dict:
    """The thresholds from a dict (the params' ``report:``), an object with attributes, or None."""
    out = dict(DEFAULTS)
    for key in DEFAULTS:
        value = options.get(key) if isinstance(options, dict) else getattr(options, key, None)
        if value is not None:
            out[key] = float(value)
    return out


def _repeats(rec: dict, kind: str, i: int) -> list[float] | None:
    """Every repeat's seconds of one side at the i-th n (the median alone in the old format)."""
    reps = rec.get(f"{kind}_times_s")
    if reps is not None and reps[i] is not None:
        return [float(t) for t in reps[i]]
    med = rec[f"{kind}_s"][i]
    return None if med is None else [float(med)]


def _timed(scaling: dict, rec: dict) -> tuple[bool, str]:
    """(both sides timed the same way, how): compiled or eager alike, and the same CPU threads. The
    old format has no ``one_shot_compiled``: it never compiled one shot."""
    it_c = bool(rec.get("iterative_compiled", False))
    os_c = bool(rec.get("one_shot_compiled", False))
    how = "both compiled" if it_c and os_c else "both eager" if not (it_c or os_c) else (
        f"iterative {'compiled' if it_c else 'eager'}, one shot {'compiled' if os_c else 'eager'}")
    th_it, th_os = scaling.get("threads_iterative"), scaling.get("threads_one_shot")
    same_threads = th_it is None or th_os is None or th_it == th_os
    if not same_threads:
        how += f", threads {th_it} iterating / {th_os} one shot"
    return it_c == os_c and same_threads, how


def judge_regime(scaling: dict, regime: str, rec: dict, options=None) -> dict:
    """One regime's row under the rule of this module (see its docstring): the numbers, ``verdict`` and ``why``."""
    o = _options(options)
    f, tol, share = o["cost_flop_factor"], o["cost_slope_tolerance"], o["cost_attention_share"]
    ns, b = scaling["n"], scaling["batch_size"]
    both = [i for i, n in enumerate(ns) if rec["one_shot_s"][i] is not None and rec["iterative_s"][i] is not None
            and rec["one_shot_s"][i] > 0 and rec["iterative_s"][i] > 0]
    last = both[-1] if both else len(ns) - 1
    n_last = ns[last]
    k = n_last / b
    att_it, att_os = rec["iterative_attention_flops"][last], rec["one_shot_attention_flops"][last]
    flop_ratio = att_os / att_it if att_it else math.nan
    flop_ok = bool(k / f <= flop_ratio <= k * f)
    fit = [i for i in both
           if rec["one_shot_flops"][i] and rec["one_shot_attention_flops"][i] >= share * rec["one_shot_flops"][i]]
    fit_ns = [ns[i] for i in fit]
    s = slope_interval(fit_ns, [_repeats(rec, "iterative", i) for i in fit],
                       [_repeats(rec, "one_shot", i) for i in fit], o["level"]) if fit else \
        slope_interval([], [], [], o["level"])
    same, how = _timed(scaling, rec)
    r_last = rec["one_shot_s"][last] / rec["iterative_s"][last] if both else None
    lo_b, hi_b = 1.0 - tol, 1.0 + tol
    why = []
    if not flop_ok:
        why.append(f"counted attention FLOPs one shot / iterating {flop_ratio:.4g} = {flop_ratio / k:.3g} K, outside "
                   f"K/{f:g}..{f:g}K")
    if not same:
        why.append(f"the sides were not timed the same way ({how}): the time evidence is not judged")
    if len(fit) < MIN_SIZES:
        why.append(f"{len(fit)} size(s) where both ran and one shot's attention share >= {share:g} (need {MIN_SIZES})")
    elif s["method"] is None:
        why.append("no interval for the slope")
    interval_in = s["method"] is not None and lo_b <= s["lo"] and s["hi"] <= hi_b
    interval_out = s["method"] is not None and (s["hi"] < lo_b or s["lo"] > hi_b)
    timing_ok = same and len(fit) >= MIN_SIZES and s["method"] is not None
    if not flop_ok or (timing_ok and interval_out):
        verdict = "contradicted"
        if timing_ok and interval_out:
            why.append(f"the slope's interval [{s['lo']:.3g}, {s['hi']:.3g}] lies wholly outside 1 +- {tol:g}")
    elif timing_ok and interval_in:
        verdict = "reproduced"
        why.append(f"counted FLOPs {flop_ratio / k:.3g} K and the slope's interval [{s['lo']:.3g}, {s['hi']:.3g}] "
                   f"within 1 +- {tol:g}")
    else:
        verdict = "inconclusive"
        if timing_ok:
            why.append(f"the slope's interval [{s['lo']:.3g}, {s['hi']:.3g}] straddles a bound of 1 +- {tol:g}")
    return {"regime": regime, "device": scaling.get("device_name", scaling.get("device")),
            "tasks per call": scaling.get("n_tasks"), "B": b, "largest n": n_last, "K = n/B": k,
            "attention FLOP ratio": flop_ratio, "FLOP ratio / K": flop_ratio / k if k else math.nan,
            "FLOPs within band": flop_ok, "time ratio R": r_last,
            "fit range": f"{fit_ns[0]}..{fit_ns[-1]} ({len(fit_ns)} sizes)" if fit_ns else "none",
            "slope of R": s["slope"], "slope low": s["lo"], "slope high": s["hi"], "interval": s["method"] or "none",
            "interval df": s["df"], "slope low (residuals)": s["lo_residual"],
            "slope high (residuals)": s["hi_residual"],
            "timed": how, "verdict": verdict, "why": "; ".join(why)}


def _fmt(v: float) -> str:
    return "nan" if v is None or not math.isfinite(v) else f"{v:.3g}"


def cost_rule(options=None) -> str:
    """Claim 6's rule as the report states it, after what was measured (``options`` as :func:`judge_cost`'s)."""
    o = _options(options)
    f, tol, share, level = o["cost_flop_factor"], o["cost_slope_tolerance"], o["cost_attention_share"], o["level"]
    return (f"(a) The counted attention FLOPs one shot / iterating at the largest n where both ran lie within "
            f"K/{f:g}..{f:g}K (K = n/B). (b) The time ratio R(n) = t_one_shot / t_iterating grows like K: the "
            f"least-squares slope of log R against log n, over the sizes where one shot's counted attention is >= "
            f"{share:g} of its FLOPs, has its {level:.0%} interval (t, from the repeats' within-n variance, else from "
            f"the sizes' residuals) within 1 +- {tol:g}. A regime reproduces when (a) and (b) hold, is contradicted "
            f"when (a) fails or the interval lies wholly outside 1 +- {tol:g}, and is inconclusive otherwise. "
            "Reproduced when every regime reproduces, contradicted when one is contradicted.")


def cost_precondition(options=None) -> str:
    """What claim 6's time evidence needs (``options`` as :func:`judge_cost`'s)."""
    share = _options(options)["cost_attention_share"]
    return (f"both sides timed the same way (both compiled or both eager, the same CPU threads), on one machine; at "
            f"least {MIN_SIZES} sizes where both ran and one shot's counted attention is >= {share:g} of its FLOPs")


def judge_cost(scaling: dict | None, options=None) -> dict:
    """Claim 6's result from an ``iai bench cost`` JSON (a dict; None: no measurement): the keys of
    every claim (``claim``, ``title``, ``test``, ``precondition``, ``verdict``, ``effect``,
    ``numbers``: one row per regime, ``explanation``). ``options``: the params' ``report:`` section
    (a dict or an object with those attributes); the thresholds are in :data:`DEFAULTS`."""
    o = _options(options)
    pre = cost_precondition(o)
    if not scaling or not scaling.get("regimes"):
        return _result("`iai bench cost`", pre, "inconclusive", [],
                       "no cost benchmark of this recipe (`make bench` measures one)")
    device = scaling.get("device_name", scaling.get("device"))
    test = (f"`iai bench cost` on {device}: per regime an iterative learner (B = {scaling['batch_size']}) against its "
            f"one-shot twin on the same {scaling.get('n_tasks')} tasks per call, n doubling to {max(scaling['n'])}. "
            + cost_rule(o))
    rows = [judge_regime(scaling, regime, rec, o) for regime, rec in scaling["regimes"].items()]
    verdicts = [r["verdict"] for r in rows]
    verdict = ("contradicted" if "contradicted" in verdicts
               else "reproduced" if all(v == "reproduced" for v in verdicts) else "inconclusive")
    text = "; ".join(
        f"{r['regime']}: attention FLOPs {_fmt(r['attention FLOP ratio'])}x at n = {r['largest n']} "
        f"(K = {r['K = n/B']:g}, "
        f"{_fmt(r['FLOP ratio / K'])} K), R = {_fmt(r['time ratio R'])}, slope of R {_fmt(r['slope of R'])} "
        f"[{_fmt(r['slope low'])}, {_fmt(r['slope high'])}] over n = {r['fit range']} ({r['interval']}), {r['timed']}: "
        f"{r['verdict']} ({r['why']})" for r in rows)
    effect = [{"regime": r["regime"], "slope": r["slope of R"], "lo": r["slope low"], "hi": r["slope high"],
               "flop_ratio_over_K": r["FLOP ratio / K"]} for r in rows]
    return _result(test, pre, verdict, rows, text, effect)


def _result(test, pre, verdict, numbers, explanation, effect=None) -> dict:
    assert verdict in VERDICTS
    return {"claim": "6", "title": TITLE, "test": test, "precondition": pre, "verdict": verdict, "effect": effect,
            "numbers": numbers, "explanation": explanation}


def device_table(paths: list, options=None) -> pd.DataFrame:
    """One row per (``iai bench cost`` JSON file, regime), each judged by :func:`judge_cost`'s rule:
    file, device, tasks per call, largest n, K, the counted attention-FLOP ratio, R, the slope of R
    with its interval, how the sides were timed, the regime's verdict and why."""
    rows = []
    for path in paths:
        try:
            scaling = json.loads(Path(path).read_text())
            result = judge_cost(scaling, options)
        except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
            raise ValueError(f"{path}: expected the JSON of `iai bench cost` ({type(err).__name__}: {err})") from err
        for r in result["numbers"]:
            rows.append({"file": Path(path).name, **r})
    columns = ["file", "regime", "device", "tasks per call", "largest n", "K = n/B", "attention FLOP ratio",
               "FLOP ratio / K", "time ratio R", "fit range", "slope of R", "slope low", "slope high", "interval",
               "timed", "verdict", "why"]
    return pd.DataFrame(rows, columns=columns)
