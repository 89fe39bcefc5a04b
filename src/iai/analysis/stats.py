"""Paired comparisons of two learners with intervals that keep their coverage over training seeds.

    python -m iai.analysis.stats            # null rejection rate and power at the recipe's tasks and seeds

Two learners A and B evaluated on the same bank tasks give per-(seed, task) values ``A[s, t]`` and
``B[s, t]``. The question a claim asks is about the *methods*, so the population is tasks *and*
training seeds: a second training run of A is a new draw, as a new task is. The estimator
(:func:`compare`) is a two-way random-effects (seeds x tasks) analysis of the grand means:

- the effect is ``sign * (mean_A - mean_B)``, divided by ``|mean_B|`` for the relative metrics
  (excess risk, error rate, MSE, NLL); negative means A is better;
- its variance is linearized (the delta method for the ratio): with ``c = mean_A / mean_B``
  (relative) or 1, ``D = A - c B`` has the effect's fluctuations; its grand mean's variance is the
  sum of a *seed* part, ``var_s(row means of D) / S`` (seeds paired by index, when both sides have the
  same seeds: the same model at two steps, or two models trained with the same seed indices), or
  ``var_s(A rows) / S_A + c^2 var_s(B rows) / S_B`` (unpaired), and a *task* part
  ``var_t(column means of D) / T`` (tasks are always paired). Each part over-counts the
  seed-by-task noise once, which errs on the wide side;
- the interval is Student's t with Satterthwaite's degrees of freedom for that sum: with 3 seeds the
  seed part has 2 degrees of freedom, so where seeds dominate the interval is about twice as wide as
  a normal one. That small-sample correction is what the former estimator lacked.

The former estimator (:func:`seed_bootstrap`, kept to show why it was replaced) was a percentile
bootstrap resampling tasks and, independently per learner, its seeds: with 3 seeds that is only 10
distinct multisets and the interval is too narrow. ``python -m iai.analysis.stats`` simulates both
under a zero effect with the recipe's numbers (48 tasks, 3 seeds, seed spreads up to 0.3 of the
mean): the rejection rate of the one stays near its nominal 0.05, the other's does not
(tests/test_stats.py holds both).

A missing or non-finite (seed, task) value is an error, never a silent "no clear difference".
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

RELATIVE = ("excess_risk", "error_rate", "mse", "nll")  # positive metrics: effects are relative


@dataclass(frozen=True)
class Effect:
    """A compared effect of A against B (negative: A better) with its two-sided interval."""

    effect: float
    se: float
    df: float
    lo: float
    hi: float
    value_a: float
    value_b: float
    relative: bool
    tasks: int
    seeds_a: int
    seeds_b: int
    paired_seeds: bool

    def p_less(self, bound: float = 0.0) -> float:
        """One-sided p-value for 'effect < bound' (small: the data show it)."""
        return _t_cdf((self.effect - bound) / self.se, self.df) if self.se > 0 else float(self.effect >= bound)

    def p_greater(self, bound: float = 0.0) -> float:
        """One-sided p-value for 'effect > bound'."""
        return _t_cdf(-(self.effect - bound) / self.se, self.df) if self.se > 0 else float(self.effect <= bound)

    def p_two_sided(self) -> float:
        return min(1.0, 2 * min(self.p_less(), self.p_greater()))

    def as_dict(self) -> dict:
        return {"effect": self.effect, "lo": self.lo, "hi": self.hi, "se": self.se, "df": self.df,
                "value_a": self.value_a, "value_b": self.value_b,
                "scale": "relative" if self.relative else "difference", "tasks": self.tasks,
                "seeds_a": self.seeds_a, "seeds_b": self.seeds_b, "paired_seeds": self.paired_seeds,
                "p": self.p_two_sided()}


def _t_cdf(x: float, df: float) -> float:
    return float(sps.t.cdf(x, df)) if math.isfinite(df) else float(sps.norm.cdf(x))


def _check(name: str, M: np.ndarray) -> np.ndarray:
    M = np.asarray(M, dtype=float)
    if M.ndim != 2 or M.shape[0] < 1 or M.shape[1] < 2:
        raise ValueError(f"{name}: expected values [seeds, tasks] with at least 2 tasks, got shape {M.shape}")
    bad = np.argwhere(~np.isfinite(M))
    if len(bad):
        s, t = bad[0]
        raise ValueError(f"{name}: {len(bad)} missing or non-finite value(s), first at seed index {s}, task {t}")
    return M


def compare(A: np.ndarray, B: np.ndarray, relative: bool, sign: float = 1.0, level: float = 0.95,
            paired_seeds: bool | None = None) -> Effect:
    """The effect of A against B (values ``[seeds, tasks]`` over the same tasks, columns aligned).

    ``sign``: +1 where lower is better, -1 where higher is (so negative is always 'A better').
    ``paired_seeds``: pair row s of A with row s of B (default: when both have the same number of
    rows; pass False when their rows are not the same seed indices)."""
    A, B = _check("A", A), _check("B", B)
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"A and B must cover the same tasks, got {A.shape[1]} and {B.shape[1]} columns")
    (sa, t), sb = A.shape, B.shape[0]
    paired = (sa == sb) if paired_seeds is None else paired_seeds
    if paired and sa != sb:
        raise ValueError(f"paired seeds need as many seeds on both sides, got {sa} and {sb}")
    ma, mb = float(A.mean()), float(B.mean())
    c = ma / mb if relative and mb != 0 else 1.0
    scale = abs(mb) if relative else 1.0
    if relative and mb == 0:
        raise ValueError("a relative effect needs a non-zero mean for B")
    D = A.mean(0) - c * B.mean(0)  # [tasks]: the effect's task fluctuations (seeds averaged)
    parts = [(D.var(ddof=1) / t, t - 1)]
    if paired:
        if sa > 1:
            parts.append(((A - c * B).mean(1).var(ddof=1) / sa, sa - 1))
        else:
            parts.append((math.nan, 0))
    else:
        for M, k, w in ((A, sa, 1.0), (B, sb, c * c)):
            parts.append((w * M.mean(1).var(ddof=1) / k, k - 1) if k > 1 else (math.nan, 0))
    var = sum(v for v, _ in parts)
    if not math.isfinite(var):  # one side has a single seed: its seed variance cannot be estimated
        df, se = math.nan, math.nan
    else:
        den = sum(v * v / k for v, k in parts if k > 0 and v > 0)
        df = var * var / den if den > 0 else math.inf
        se = math.sqrt(var) / scale
    effect = sign * (ma - mb) / scale
    if math.isfinite(se):
        q = float(sps.t.ppf(0.5 + level / 2, df)) if math.isfinite(df) else float(sps.norm.ppf(0.5 + level / 2))
        lo, hi = effect - q * se, effect + q * se
    else:
        lo = hi = math.nan
    return Effect(effect, se, df, lo, hi, ma, mb, relative, t, sa, sb, paired)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): reject where adjusted <= alpha.
    NaN p-values (comparisons that could not be made) count as 1."""
    p = np.array([1.0 if not math.isfinite(x) else x for x in pvalues], dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


# ---------------------------------------------------------------------------- the former estimator


def seed_bootstrap(A: np.ndarray, B: np.ndarray, relative: bool, sign: float = 1.0, level: float = 0.95,
                   n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(effect, lo, hi) of the estimator the claims used before: a percentile bootstrap resampling
    tasks (the same draw for A and B) and, independently per learner, its seeds. Kept only to show,
    by simulation, that its interval is too narrow with few seeds."""
    A, B = _check("A", A), _check("B", B)
    rng = np.random.default_rng(seed)
    t = A.shape[1]
    w = rng.multinomial(t, np.full(t, 1.0 / t), size=n_boot)  # [R, T]

    def boot(M):
        s = M.shape[0]
        u = rng.multinomial(s, np.full(s, 1.0 / s), size=n_boot)  # [R, S]
        return ((u @ M) * w).sum(1) / (s * t)

    def eff(ma, mb):
        return sign * (ma - mb) / (np.abs(mb) if relative else 1.0)

    est = eff(boot(A), boot(B))
    a = (1 - level) / 2
    lo, hi = np.quantile(est, [a, 1 - a])
    return float(eff(A.mean(), B.mean())), float(lo), float(hi)


# ---------------------------------------------------------------------------- simulation


def simulate_cell(rng: np.random.Generator, n_tasks: int, n_seeds: int, seed_spread: float,
                  effect: float = 0.0, task_spread: float = 0.5, noise: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """One comparison cell of positive, relative-metric values ``A, B [seeds, tasks]``: tasks of
    log-normal difficulty shared by both learners, each training seed scaling a learner's errors by
    ``1 + seed_spread * z`` (clipped positive), per-(seed, task) log-normal noise; A's mean is
    ``1 + effect`` times B's."""
    task = np.exp(rng.normal(0.0, task_spread, n_tasks) - task_spread ** 2 / 2)

    def learner(mult):
        s = np.clip(1 + seed_spread * rng.standard_normal((n_seeds, 1)), 0.05, None)
        e = np.exp(rng.normal(0.0, noise, (n_seeds, n_tasks)) - noise ** 2 / 2)
        return mult * s * task * e

    return learner(1.0 + effect), learner(1.0)


def rejection_rate(estimator: str, n_tasks: int, n_seeds: int, seed_spread: float, cells: int = 400,
                   effect: float = 0.0, level: float = 0.95, seed: int = 0) -> float:
    """The fraction of simulated cells whose interval excludes zero (``estimator``: 't' for
    :func:`compare`, 'bootstrap' for :func:`seed_bootstrap`)."""
    rng = np.random.default_rng(seed)
    hits = 0
    for i in range(cells):
        A, B = simulate_cell(rng, n_tasks, n_seeds, seed_spread, effect)
        if estimator == "t":
            r = compare(A, B, relative=True, level=level, paired_seeds=False)
            lo, hi = r.lo, r.hi
        elif estimator == "bootstrap":
            _, lo, hi = seed_bootstrap(A, B, relative=True, level=level, n_boot=1000, seed=i)
        else:
            raise ValueError(f"estimator: expected 't' or 'bootstrap', got {estimator!r}")
        hits += (lo > 0) or (hi < 0)
    return hits / cells


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m iai.analysis.stats", description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=48, help="tasks per cell (the default recipe's banks.n_tasks)")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per learner (the default recipe's seeds)")
    p.add_argument("--spreads", type=float, nargs="+", default=[0.05, 0.15, 0.3],
                   help="seed spreads: the sd of a training seed's error, as a fraction of the mean")
    p.add_argument("--cells", type=int, default=400, help="simulated cells per spread (>= 400)")
    p.add_argument("--effect", type=float, default=-0.3, help="the relative effect at which power is stated")
    p.add_argument("--level", type=float, default=0.95)
    p.add_argument("--former", action="store_true", help="also simulate the former seed bootstrap (slower)")
    a = p.parse_args(argv)
    nominal = 1 - a.level
    print(f"{a.tasks} tasks, {a.seeds} seeds per learner, {a.cells} cells per spread, level {a.level:g}")
    for spread in a.spreads:
        r = rejection_rate("t", a.tasks, a.seeds, spread, a.cells, 0.0, a.level)
        power = rejection_rate("t", a.tasks, a.seeds, spread, a.cells, a.effect, a.level, seed=1)
        print(f"seed spread {spread:g}: null rejection rate: {r:.3f} at nominal {nominal:.2f}; "
              f"power at a relative effect of {a.effect:+.0%}: {power:.2f}")
        if a.former:
            rb = rejection_rate("bootstrap", a.tasks, a.seeds, spread, a.cells, 0.0, a.level)
            print(f"seed spread {spread:g}: former seed bootstrap: null rejection rate: {rb:.3f} "
                  f"at nominal {nominal:.2f}")


if __name__ == "__main__":
    main()
