"""The paper's six claims (PAPER.md section 4), each a pure function: per-task table -> verdict.

Every claim returns ``{"claim", "title", "test", "precondition", "verdict", "effect", "numbers",
"explanation"}``. ``verdict`` is one of :data:`VERDICTS`:

- ``reproduced``: every comparison the claim rests on shows the claimed effect (its interval lies
  on the claimed side of zero, or inside the margin for an equivalence claim);
- ``contradicted``: a comparison shows the opposite effect (its interval lies on the other side);
- ``inconclusive``: anything else, including a comparison whose learners fail the precondition
  (they are not competent, so a difference says nothing about the method), or rows that are absent.
  The explanation says why.

Statistics (:func:`paired_effect`). Every learner evaluated on a family's split saw the same bank
tasks and the same mini-batches, so two learners are compared *paired over tasks*: the effect of A
against B is the relative difference of their mean errors, ``(mean_A - mean_B) / |mean_B|``
(negative: A is better; a plain difference for metrics that can cross zero: ``mmd``, and for the
higher-is-better ``edge_accuracy``, sign-flipped so that negative is still "A better"). Its
interval is a percentile bootstrap that resamples tasks (the same draw for A and B: the pairing)
and, independently for each learner, its training seeds: the interval holds both the task and the
training-seed variation. Nothing here is written by hand: change the table, the verdict follows.

Which learners: a learner's rows are used as they are; nothing is selected on the evaluation bank
(no "best of" over learners). The claims name the learners they compare by their columns (regime,
signal, state, history, nominal, mode); learners with the hand-written gradient term (``nominal``)
are never counted in a verdict, and runs with fewer than ``min_seeds`` training seeds are left out
(said in the explanation).

Competence (the precondition of claims 1 to 5 on the prediction families): a learned learner is
competent when, at its training context n_ctx = B x K_train and in distribution (split ``id``: the
tasks it was trained on), its error is within ``competence_factor`` times the family's reference
(Bayes, else MAP). A comparison with an
incompetent learner is inconclusive. The factor is stated in the params (``report:``), fixed before
any result, never fitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from iai.analysis.selection import LEARNED, REFERENCE, better_sign, prediction, primary_metric
from iai.params import IMPLICIT_ONLY_KINDS

VERDICTS = ("reproduced", "contradicted", "inconclusive")
RELATIVE = ("excess_risk", "error_rate", "mse", "nll")  # positive metrics: effects are relative
ONLY = " Prediction families only (regression, classification)."


@dataclass(frozen=True)
class Options:
    """The claims' stated rules (params ``report:``), fixed before any result."""

    level: float = 0.95               # interval coverage
    n_boot: int = 2000                # bootstrap resamples
    min_seeds: int = 3                # runs with fewer training seeds are not judged
    competence_factor: float = 5.0    # learner error <= factor x reference at n_ctx
    history_margin: float = 0.10      # claim 4: "barely" = relative change within +- margin
    cost_factor: float = 3.0          # claim 6
    cost_slope_tolerance: float = 0.3
    train_context: int = 128          # n_ctx = B x K_train, unless the table's one-shot rows say otherwise
    seed: int = 0                     # bootstrap stream

    @classmethod
    def from_dict(cls, values: dict | None) -> "Options":
        values = values or {}
        known = {k: values[k] for k in cls.__dataclass_fields__ if k in values}
        return cls(**known)


# ---------------------------------------------------------------------------- statistics


def _matrix(rows: pd.DataFrame, tasks: np.ndarray) -> np.ndarray:
    """Per-task rows of one learner at one cell -> values ``[seeds, tasks]`` over ``tasks``."""
    seeds, seed_index = np.unique(rows["seed"].to_numpy(), return_inverse=True)
    task_index = np.searchsorted(tasks, rows["task"].to_numpy())
    keep = (task_index < len(tasks)) & (tasks[np.minimum(task_index, len(tasks) - 1)] == rows["task"].to_numpy())
    out = np.full((len(seeds), len(tasks)), np.nan)
    out[seed_index[keep], task_index[keep]] = rows["value"].to_numpy()[keep]
    return out


def paired_effect(a: pd.DataFrame, b: pd.DataFrame, metric: str, options: Options = Options(),
                  paired: bool = True) -> dict:
    """Effect of A against B at one cell (rows with ``seed``, ``task``, ``value``), with its interval.

    ``effect < 0`` means A is better. ``paired=False`` resamples A's and B's tasks independently (what
    an analysis ignoring the pairing would do; for comparison only)."""
    tasks = np.intersect1d(a["task"].to_numpy(), b["task"].to_numpy())
    A, B = _matrix(a, tasks), _matrix(b, tasks)
    sign = better_sign(metric)
    relative = metric in RELATIVE
    mean_a, mean_b = float(np.nanmean(A)), float(np.nanmean(B))

    def effect(ma, mb):
        d = sign * (ma - mb)
        return d / np.abs(mb) if relative else d

    rng = np.random.default_rng(options.seed)
    r, t = options.n_boot, len(tasks)
    w_task = rng.multinomial(t, np.full(t, 1.0 / t), size=r)  # [R, T] task counts
    w_task_b = w_task if paired else rng.multinomial(t, np.full(t, 1.0 / t), size=r)

    def boot(M, w):
        s = M.shape[0]
        u = rng.multinomial(s, np.full(s, 1.0 / s), size=r)  # [R, S] seed counts
        return ((u @ M) * w).sum(1) / (s * t)

    est = effect(boot(A, w_task), boot(B, w_task_b))
    alpha = (1 - options.level) / 2
    lo, hi = (float(x) for x in np.quantile(est, [alpha, 1 - alpha]))
    e = float(effect(mean_a, mean_b))
    outcome = "A better" if hi < 0 else "B better" if lo > 0 else "no clear difference"
    return {"value A": mean_a, "value B": mean_b, "effect": e, "lo": lo, "hi": hi,
            "scale": "relative" if relative else "difference", "outcome": outcome, "tasks": int(t),
            "seeds A": int(A.shape[0]), "seeds B": int(B.shape[0])}


def fmt_effect(r: dict) -> str:
    """'-23% [-30%, -15%]' (relative) or '-0.012 [-0.02, -0.004]'."""
    if r.get("scale") == "relative":
        return f"{100 * r['effect']:+.1f}% [{100 * r['lo']:+.1f}%, {100 * r['hi']:+.1f}%]"
    return f"{r['effect']:+.3g} [{r['lo']:+.3g}, {r['hi']:+.3g}]"


# ---------------------------------------------------------------------------- the table, indexed


_CELL = ["family", "split", "learner", "mode", "context", "n_train", "metric", "step"]


class Cells:
    """The per-task table indexed by (family, split, learner, mode, context, n, metric, step) for fast
    paired comparisons; a learner's *final step* at n is the last step it was scored at."""

    def __init__(self, tasks: pd.DataFrame, options: Options):
        self.o = options
        t = tasks.reset_index(drop=True)
        self.index = t.set_index(_CELL)[["seed", "task", "value"]].sort_index()
        last = t.groupby(["family", "split", "learner", "mode", "context", "n_train"])["step"].max()
        self.last = last.to_dict()
        self.primary = {f: primary_metric(t, f) for f in t.family.unique()}
        self.final = t.drop_duplicates(["family", "split", "learner", "mode", "context", "n_train", "batch_size"])
        self.learners = (t.drop_duplicates(["family", "learner", "mode"])
                         [["family", "kind", "dim", "learner", "regime", "signal", "state", "history", "nominal", "mode"]])
        self.seeds = t.groupby(["family", "learner", "mode"])["seed"].nunique().to_dict()

    def rows(self, family, split, learner, n, metric=None, mode="iterative", context="all", step=None):
        """Per-task rows (seed, task, value) at one cell (the final step unless ``step``); None if absent."""
        step = step if step is not None else self.last.get((family, split, learner, mode, context, n))
        key = (family, split, learner, mode, context, n, metric or self.primary[family], step)
        if step is None or key not in self.index.index:
            return None
        return self.index.loc[key]

    def ns(self, family, learner, mode="iterative", context="all") -> list[int]:
        f = self.final
        sel = (f.family == family) & (f.learner == learner) & (f["mode"] == mode) & (f.context == context)
        return sorted(int(n) for n in f.loc[sel, "n_train"].unique())

    def splits(self, family) -> list[str]:
        return sorted(self.final.loc[self.final.family == family, "split"].unique(), key=lambda s: (s != "id", s))

    def judged(self, family, learner, mode="iterative") -> bool:
        return self.seeds.get((family, learner, mode), 0) >= self.o.min_seeds

    def reference(self, family) -> str | None:
        present = set(self.learners.loc[self.learners.family == family, "learner"])
        return next((r for r in REFERENCE if r in present), None)

    def n_ctx(self, family) -> int:
        capped = self.final[(self.final.family == family) & (self.final["mode"] == "one_shot")
                            & (self.final.context == "capped")]
        return int(capped.batch_size.max()) if not capped.empty else self.o.train_context

    def competence(self, family, learner, mode="iterative") -> tuple[bool, str]:
        """(competent?, why): error <= factor x reference at the training context n_ctx, in distribution.

        Competence asks whether a learner learned the task it was trained on, so it is read on the
        ``id`` split; out of distribution the same learner is then compared wherever it stands."""
        ref = self.reference(family)
        metric = self.primary[family]
        if ref is None or metric not in RELATIVE:
            return True, "no reference ratio for this family"
        n = self.n_ctx(family)
        a = self.rows(family, "id", learner, n, mode=mode)
        r = self.rows(family, "id", ref, n)
        if a is None or r is None:
            return False, f"{learner} or {ref} not evaluated at n_ctx = {n} in distribution"
        ratio = a.value.mean() / max(r.value.mean(), 1e-12)
        ok = ratio <= self.o.competence_factor
        return bool(ok), f"{learner}: {ratio:.3g}x {ref} at n_ctx = {n}"

    def compare(self, family, split, n, a, b, a_mode="iterative", b_mode="iterative", b_context="all",
                metric=None, a_step=None, b_step=None) -> dict | None:
        """Paired effect of learner a against b at one (family, split, n); None where a row is absent.
        ``a_step`` / ``b_step`` pick a step other than the final one (A and B may be the same learner)."""
        metric = metric or self.primary[family]
        ra = self.rows(family, split, a, n, metric, a_mode, step=a_step)
        rb = self.rows(family, split, b, n, metric, b_mode, b_context, step=b_step)
        if ra is None or rb is None or ra.empty or rb.empty:
            return None
        out = {"family": family, "split": split, "n": int(n), "A": a, "B": b, "metric": metric}
        return {**out, **paired_effect(ra, rb, metric, self.o)}


def _result(claim, title, test, precondition, verdict, numbers, explanation, effect=None) -> dict:
    assert verdict in VERDICTS
    numbers = [{k: v.item() if isinstance(v, np.generic) else v for k, v in r.items()} for r in numbers]
    return {"claim": claim, "title": title, "test": test, "precondition": precondition, "verdict": verdict,
            "effect": effect, "numbers": numbers, "explanation": explanation}


def combine(parts: list[str]) -> str:
    """Verdicts of a claim's parts -> the claim's: any contradicted wins, then all reproduced, else inconclusive."""
    if not parts:
        return "inconclusive"
    if "contradicted" in parts:
        return "contradicted"
    return "reproduced" if all(p == "reproduced" for p in parts) else "inconclusive"


def directional(records: list[dict], want: str = "A better") -> str:
    """Any judged comparison showing the opposite of ``want`` -> contradicted; every comparison judged
    and showing ``want`` -> reproduced; else inconclusive."""
    judged = [r for r in records if r.get("judged", True)]
    if any(r["outcome"] not in (want, "no clear difference") for r in judged):
        return "contradicted"
    if judged and len(judged) == len(records) and all(r["outcome"] == want for r in judged):
        return "reproduced"
    return "inconclusive"


def _gate(cells: Cells, rec: dict, learners: list[tuple[str, str]]) -> dict:
    """Mark a comparison judged only when every (learner, mode) in it is competent."""
    why = []
    ok = True
    for name, mode in learners:
        good, text = cells.competence(rec["family"], name, mode)
        ok &= good
        if not good:
            why.append(text)
    rec["judged"] = bool(ok)
    if why:
        rec["precondition failed"] = "; ".join(why)
    return rec


def _learned(cells: Cells, **cols) -> pd.DataFrame:
    """Learned learners (not nominal, with enough seeds) whose columns match ``cols``."""
    L = cells.learners
    sel = L.regime.isin(LEARNED) & ~L.nominal.astype(bool)
    for k, v in cols.items():
        sel &= L[k].isin(v) if isinstance(v, (list, tuple, set)) else (L[k] == v)
    out = L[sel]
    keep = np.array([cells.judged(r.family, r.learner, r.mode) for r in out.itertuples()], dtype=bool)
    return out[keep] if len(out) else out


def _unseeded(cells: Cells) -> list[str]:
    L = cells.learners[cells.learners.regime.isin(LEARNED)]
    return sorted(f"{r.family}/{r.learner}" for r in L.itertuples() if not cells.judged(r.family, r.learner, r.mode))


def _summary(records: list[dict]) -> str:
    judged = [r for r in records if r.get("judged", True)]
    n = {o: sum(r["outcome"] == o for r in judged) for o in ("A better", "B better", "no clear difference")}
    skipped = len(records) - len(judged)
    return (f"{len(judged)} judged: A better in {n['A better']}, B better in {n['B better']}, unclear in "
            f"{n['no clear difference']}" + (f"; {skipped} not judged (precondition)" if skipped else ""))


# ---------------------------------------------------------------------------- the six claims


def claim_more_steps(cells: Cells) -> dict:
    """1. More refinement steps improve results, in- and out-of-distribution, in all three regimes.

    (a) Each learned iterative learner (Markovian, no hand-written term), each split, each n: the
    error after the last doubling of steps (n/B) against before it (n/(2B)), paired. (b) Against the
    one-shot twin of the same family, regime, signal and state reading all n points at once, at the
    training context n_ctx and at every larger n evaluated; the crossover n is the smallest n from
    which the iterative learner is better. Judged: (a) at the largest n; (b) at the largest n.
    """
    title = "More refinement steps improve results, in- and out-of-distribution, in all three regimes"
    o = cells.o
    it = _learned(cells, mode="iterative", history=0)
    doubling, twins, parts, lines = [], [], {}, []
    for r in it.itertuples():
        ns = cells.ns(r.family, r.learner)
        for split in cells.splits(r.family):
            for n in ns:
                steps = cells.last.get((r.family, split, r.learner, "iterative", "all", n), 1)
                if steps < 2:
                    continue
                rec = cells.compare(r.family, split, n, r.learner, r.learner, a_step=int(steps), b_step=int(steps) // 2)
                if rec:
                    rec["where"] = f"{r.regime}: step {int(steps)} vs {int(steps) // 2}"
                    rec["A"], rec["B"] = f"{r.learner} step {int(steps)}", f"{r.learner} step {int(steps) // 2}"
                    doubling.append(_gate(cells, rec, [(r.learner, "iterative")]))
        one = _learned(cells, mode="one_shot", family=r.family, regime=r.regime, signal=r.signal, state=r.state)
        for tw in one.itertuples():
            n_ctx = cells.n_ctx(r.family)
            for split in cells.splits(r.family):
                recs = []
                for n in [n for n in cells.ns(r.family, r.learner) if n >= n_ctx]:
                    rec = cells.compare(r.family, split, n, r.learner, tw.learner, b_mode="one_shot", b_context="all")
                    if rec:
                        rec["where"] = f"{r.regime}: iterative vs one-shot twin, n = {n // n_ctx}x n_ctx"
                        recs.append(_gate(cells, rec, [(r.learner, "iterative"), (tw.learner, "one_shot")]))
                better = [x["n"] for x in recs if x["outcome"] == "A better"]
                cross = min(better) if better and all(x["outcome"] == "A better" for x in recs if x["n"] >= min(better)) else None
                for x in recs:
                    x["crossover n"] = cross
                twins += recs
                if recs:
                    lines.append(f"{r.family}/{r.learner} vs {tw.learner} ({split}): crossover n = {cross or 'none'}")
    for regime in LEARNED:
        at_max = []
        for group in (doubling, twins):
            sel = [x for x in group if x["where"].startswith(regime)]
            for key in {(x["family"], x["split"], x["A"].split(" step")[0]) for x in sel}:
                cell = [x for x in sel if (x["family"], x["split"], x["A"].split(" step")[0]) == key]
                at_max.append(max(cell, key=lambda x: x["n"]))
        parts[regime] = directional(at_max) if at_max else "inconclusive"
    missing = [r for r, v in parts.items() if not any(x["where"].startswith(r) for x in doubling + twins)]
    verdict = combine(list(parts.values()))
    test = ("(a) every learned iterative learner (Markovian, no hand-written term, >= "
            f"{o.min_seeds} seeds), every split and n: error after n/B steps vs after n/(2B) (the last doubling); "
            "(b) iterative vs its one-shot twin (same family, regime, signal, state) reading all n points, at "
            "n = n_ctx and every larger n evaluated. Paired over tasks, bootstrap over tasks and seeds, "
            f"{o.level:.0%} interval. Judged at the largest n: reproduced when, in each of the three regimes, "
            "every judged comparison shows the later step (a) and the iterative learner (b) better; contradicted "
            "when one shows the opposite.")
    pre = f"every learner in a comparison within {o.competence_factor:g}x the reference at n_ctx (prediction families)"
    text = "; ".join([f"{r}: {v}" for r, v in parts.items()]
                     + [f"doublings: {_summary(doubling)}", f"one-shot twins: {_summary(twins)}"] + lines
                     + ([f"regime(s) without judged rows: {', '.join(missing)}"] if missing else [])
                     + ([f"not judged (< {o.min_seeds} seeds): {', '.join(_unseeded(cells))}"] if _unseeded(cells) else []))
    return _result("1", title, test, pre, verdict, doubling + twins, text)


def claim_signal(cells: Cells) -> dict:
    """2. Observations beat gradients in low dimension; gradients help in high dimension or with few points.

    Parametric iterative learners without the hand-written term, signals obs / grad / both, split id,
    per family kind with two or more dims d. (a) lowest d, largest n: obs against grad. (b) highest d,
    fewest points (the smallest n, at most 2d): grad against obs. Every d and n is reported; 'both is
    best' is reported (both against obs and against grad), not judged.
    """
    title = "Observations beat gradients in low dimension; gradients help in high dimension or with few points"
    o = cells.o
    p = _learned(cells, mode="iterative", regime="parametric", history=0, signal=["obs", "grad", "both"])
    p = p[~p.kind.isin(IMPLICIT_ONLY_KINDS)]
    numbers, low, high = [], [], []
    for kind, g in p.groupby("kind"):
        by_dim = {d: {r.signal: r for r in gd.itertuples()} for d, gd in g.groupby("dim")}
        dims = sorted(d for d, s in by_dim.items() if {"obs", "grad"} <= set(s))
        if len(dims) < 2:
            continue
        for d in dims:
            s = by_dim[d]
            fam = s["obs"].family
            for n in cells.ns(fam, s["obs"].learner):
                for a, b in (("obs", "grad"), ("both", "obs"), ("both", "grad")):
                    if a not in s or b not in s:
                        continue
                    rec = cells.compare(fam, "id", n, s[a].learner, s[b].learner)
                    if rec:
                        rec["where"] = f"d = {d}: {a} vs {b}"
                        numbers.append(_gate(cells, rec, [(s[a].learner, "iterative"), (s[b].learner, "iterative")]))
        lo_d, hi_d = dims[0], dims[-1]
        cand = [x for x in numbers if x["where"] == f"d = {lo_d}: obs vs grad"]
        if cand:
            low.append(max(cand, key=lambda x: x["n"]))
        few = min((x for x in numbers if x["where"] == f"d = {hi_d}: obs vs grad"), key=lambda x: x["n"], default=None)
        if few:  # grad against obs, computed that way round: a relative effect does not flip by its sign
            s = by_dim[hi_d]
            rec = cells.compare(s["grad"].family, "id", few["n"], s["grad"].learner, s["obs"].learner)
            rec["where"] = f"d = {hi_d}: grad vs obs (fewest points)"
            high.append(_gate(cells, rec, [(s["grad"].learner, "iterative"), (s["obs"].learner, "iterative")]))
    test = ("Parametric iterative learners without the hand-written gradient term (>= "
            f"{o.min_seeds} seeds), split id: (a) at the lowest d and the largest n, obs vs grad; (b) at the highest d "
            "and the fewest points (smallest n), grad vs obs. Paired over tasks, bootstrap over tasks and seeds. "
            "Reproduced when (a) shows obs better and (b) grad better; contradicted when either shows the opposite." + ONLY)
    pre = f"both learners within {o.competence_factor:g}x the reference at n_ctx"
    if not low or not high:
        return _result("2", title, test, pre, "inconclusive", numbers,
                       "needs parametric obs and grad learners (no hand-written term) at two or more dims")
    verdict = combine([directional(low), directional(high)])
    text = (f"(a) {low[0]['where']} at n = {low[0]['n']}: {low[0]['outcome']}, effect {fmt_effect(low[0])}; "
            f"(b) {high[0]['where']} at n = {high[0]['n']}: {high[0]['outcome']}, effect {fmt_effect(high[0])}"
            + "".join(f" [{x['precondition failed']}]" for x in low + high if "precondition failed" in x)
            + f"; all d and n: {_summary(numbers)}")
    return _result("2", title, test, pre, verdict, low + high + numbers, text, effect=[low[0], high[0]])


def claim_parametric_explicit(cells: Cells) -> dict:
    """3. Parametric beats explicit.

    Iterative learners of the two regimes with the same family and signal (no hand-written term),
    every split, at n_ctx and at the largest n. Judged only where the explicit learner at least
    matches its own one-shot twin (same family and signal) at n_ctx: an explicit learner worse than
    its one-shot twin is broken, and beating it says nothing about the regime.
    """
    title = "Parametric beats explicit"
    o = cells.o
    par = _learned(cells, mode="iterative", regime="parametric", history=0)
    exp = _learned(cells, mode="iterative", regime="explicit", history=0)
    recs, pre_lines = [], []
    for e in exp.itertuples():
        if e.kind in IMPLICIT_ONLY_KINDS:
            continue
        twin = _learned(cells, mode="one_shot", regime="explicit", family=e.family, signal=e.signal)
        n_ctx = cells.n_ctx(e.family)
        ok_twin, why = False, f"{e.family}/{e.learner}: no one-shot explicit twin with signal {e.signal}"
        if not twin.empty:
            chk = cells.compare(e.family, "id", n_ctx, twin.learner.iloc[0], e.learner, a_mode="one_shot")
            if chk:
                ok_twin = chk["outcome"] != "A better"
                why = (f"{e.family}/{e.learner} vs its one-shot twin {twin.learner.iloc[0]} at n_ctx: "
                       f"twin effect {fmt_effect(chk)} ({'matches' if ok_twin else 'twin better: explicit learner broken'})")
        pre_lines.append(why)
        for p in par[(par.family == e.family) & (par.signal == e.signal)].itertuples():
            for split in cells.splits(e.family):
                ns = cells.ns(e.family, p.learner)
                for n in sorted({n_ctx, max(ns)} & set(ns)):
                    rec = cells.compare(e.family, split, n, p.learner, e.learner)
                    if rec:
                        rec["where"] = f"parametric vs explicit ({e.signal})"
                        rec = _gate(cells, rec, [(p.learner, "iterative"), (e.learner, "iterative")])
                        if not ok_twin:
                            rec["judged"] = False
                            rec["precondition failed"] = why
                        recs.append(rec)
    test = ("Parametric vs explicit iterative learners with the same family and signal (no hand-written term, >= "
            f"{o.min_seeds} seeds), every split, at n_ctx and the largest n, paired. Reproduced when every judged "
            "comparison shows parametric better; contradicted when one shows explicit better." + ONLY)
    pre = ("the explicit learner is not beaten by its own one-shot twin at n_ctx, and both learners are within "
           f"{o.competence_factor:g}x the reference at n_ctx")
    if not recs:
        return _result("3", title, test, pre, "inconclusive", [], "no parametric and explicit learners with a common signal")
    verdict = directional(recs)
    return _result("3", title, test, pre, verdict, recs, f"parametric (A) vs explicit (B): {_summary(recs)}; "
                   + "; ".join(pre_lines))


def claim_history(cells: Cells) -> dict:
    """4. A history window barely helps: an equivalence test.

    Each learner with a window (history > 0) against the Markovian learner of the same family,
    regime, signal, state and nominal flag, every split, at the largest n. Reproduced when every
    interval of the relative change lies inside +- ``history_margin``; contradicted when one lies
    wholly below -margin (the window helps more than "barely"); a window that hurts beyond the
    margin is no reproduction (inconclusive, said so).
    """
    title = "A history window barely helps"
    o = cells.o
    L = cells.learners
    hist = L[L.regime.isin(LEARNED) & (L.history > 0) & (L["mode"] == "iterative")]
    recs = []
    for h in hist.itertuples():
        if not cells.judged(h.family, h.learner) or h.kind in IMPLICIT_ONLY_KINDS:
            continue
        base = L[(L.family == h.family) & (L.regime == h.regime) & (L.signal == h.signal) & (L.state == h.state)
                 & (L.nominal == h.nominal) & (L.history == 0) & (L["mode"] == "iterative")]
        for b in base.itertuples():
            if not cells.judged(b.family, b.learner):
                continue
            for split in cells.splits(h.family):
                ns = cells.ns(h.family, h.learner)
                rec = cells.compare(h.family, split, max(ns), h.learner, b.learner) if ns else None
                if rec:
                    rec["where"] = "history window vs Markovian"
                    inside = -o.history_margin < rec["lo"] and rec["hi"] < o.history_margin
                    rec["equivalence"] = ("within margin" if inside else "helps beyond margin" if rec["hi"] < -o.history_margin
                                          else "hurts beyond margin" if rec["lo"] > o.history_margin else "undecided")
                    recs.append(_gate(cells, rec, [(h.learner, "iterative"), (b.learner, "iterative")]))
    test = (f"Equivalence: each history > 0 learner (>= {o.min_seeds} seeds) vs the Markovian learner with the same "
            "family/regime/signal/state/nominal flag, every split, largest n, paired; relative change of the error and "
            f"its {o.level:.0%} interval. Reproduced when every interval lies within +-{o.history_margin:.0%}; "
            f"contradicted when one lies wholly below -{o.history_margin:.0%} (helps more than barely). A window that "
            "hurts beyond the margin is not a reproduction (inconclusive)." + ONLY)
    pre = f"both learners within {o.competence_factor:g}x the reference at n_ctx"
    if not recs:
        return _result("4", title, test, pre, "inconclusive", [], "no learner with a history window and its Markovian twin")
    judged = [r for r in recs if r["judged"]]
    kinds = [r["equivalence"] for r in judged]
    if "helps beyond margin" in kinds:
        verdict = "contradicted"
    elif judged and len(judged) == len(recs) and all(k == "within margin" for k in kinds):
        verdict = "reproduced"
    else:
        verdict = "inconclusive"
    text = "; ".join(f"{r['family']} {r['split']}: {r['A']} vs {r['B']} {fmt_effect(r)} ({r['equivalence']}"
                     + (f"; {r['precondition failed']}" if "precondition failed" in r else "") + ")" for r in recs)
    return _result("4", title, test, pre, verdict, recs, text)


def claim_logits(cells: Cells) -> dict:
    """5. Logits are the best implicit state.

    Implicit iterative learners of the classification families: state logits against each other
    state (probs: a convex-mixture update on the simplex; hidden), same family, every split, at the
    largest n, on the error rate and the NLL, paired. Needs two or more classification families.
    Reproduced when logits is better on at least one metric and worse on none, in every judged
    comparison; contradicted when another state is better on the error rate.
    """
    title = "Logits are the best implicit state"
    o = cells.o
    imp = _learned(cells, mode="iterative", regime="implicit", history=0)
    imp = imp[~imp.kind.isin(IMPLICIT_ONLY_KINDS)]
    recs, fams, parts = [], set(), []
    for fam, g in imp.groupby("family"):
        if cells.primary.get(fam) != "error_rate":
            continue
        logits = g[g.state == "logits"]
        for lg in logits.itertuples():
            for other in g[g.state != "logits"].itertuples():
                for split in cells.splits(fam):
                    ns = cells.ns(fam, lg.learner)
                    pair = []
                    for metric in ("error_rate", "nll"):
                        rec = cells.compare(fam, split, max(ns), lg.learner, other.learner, metric=metric) if ns else None
                        if rec:
                            rec["where"] = f"logits vs {other.state} ({metric})"
                            pair.append(_gate(cells, rec, [(lg.learner, "iterative"), (other.learner, "iterative")]))
                    if pair:
                        fams.add(fam)
                        recs += pair
                        if not all(r["judged"] for r in pair):
                            parts.append("inconclusive")
                        elif any(r["metric"] == "error_rate" and r["outcome"] == "B better" for r in pair):
                            parts.append("contradicted")
                        elif any(r["outcome"] == "A better" for r in pair) and not any(r["outcome"] == "B better" for r in pair):
                            parts.append("reproduced")
                        else:
                            parts.append("inconclusive")
    test = (f"Implicit iterative learners (>= {o.min_seeds} seeds) of each classification family: logits vs each other "
            "state (probs, hidden), every split, largest n, on error rate and NLL, paired. Reproduced when logits is "
            "better on at least one metric and worse on neither in every judged comparison, in two or more families; "
            "contradicted when another state has the lower error rate." + ONLY)
    pre = f"both learners within {o.competence_factor:g}x the reference (MAP) at n_ctx"
    if not recs:
        return _result("5", title, test, pre, "inconclusive", [], "no implicit learner with state logits and another state")
    verdict = combine(parts)
    if verdict == "reproduced" and len(fams) < 2:
        verdict = "inconclusive"
    text = (f"{len(fams)} classification famil{'y' if len(fams) == 1 else 'ies'}; " + "; ".join(
        f"{r['family']} {r['split']} {r['where']}: {fmt_effect(r)}" for r in recs))
    return _result("5", title, test, pre, verdict, recs, text)


def claim_cost_scaling(scaling: dict | None, options: Options = Options()) -> dict:
    """6. Iterating is about K times cheaper than one shot, judged where attention dominates.

    ``scaling`` is the JSON of ``iai bench cost`` (one iterative learner per regime against its
    one-shot twin, n doubling to tens of thousands; its ``claim6`` holds the fitted slopes and
    ratios). Per regime at the largest n where both ran: the time ratio R within K/factor .. K*factor,
    or log-log slopes of time within the tolerance of 2 (one shot) and 1 (iterative). Reproduced when
    every regime passes; contradicted when a regime's one shot is not slower than iterating at all
    (R < 1) or passes neither rule; inconclusive without measurements.
    """
    title = "Iterating is about K times cheaper than one shot over the same data"
    factor, slope_tol = options.cost_factor, options.cost_slope_tolerance
    if not scaling:
        return _result("6", title, "`iai bench cost`", "-", "inconclusive", [], "no cost scaling measured")
    c6 = scaling["claim6"]
    recs = []
    for regime, r in c6["regimes"].items():
        k, ratio = r["K_at_largest"], r["time_ratio_at_largest"]
        s_it, s_os = r["slope_iterative"], r["slope_one_shot"]
        if k is None or ratio is None:
            continue
        ok = (k / factor <= ratio <= k * factor) or (abs(s_os - 2) <= slope_tol and abs(s_it - 1) <= slope_tol)
        recs.append({"regime": regime, "n": int(r["largest_n_both"]), "K = n/B": k, "time ratio R": ratio,
                     "FLOP ratio": r["flop_ratio_at_largest"], "slope (iterative)": s_it, "slope (one-shot)": s_os,
                     "memory ratio": r["memory_ratio_at_largest"], "passes": bool(ok)})
    lo, hi = c6["fit_range"]
    test = (f"`iai bench cost` ({scaling.get('device_name', scaling.get('device'))}): an iterative learner per regime "
            f"(B = {scaling['batch_size']}) against its one-shot twin on the same tasks, n doubling to {max(scaling['n'])}. "
            f"At the largest n where both ran: time ratio R = t_one_shot / t_iterative against K = n/B. Passes when "
            f"K/{factor:g} <= R <= {factor:g}K, or when the log-log slopes of time against n over n = {lo}..{hi} are "
            f"2 +- {slope_tol:g} (one shot) and 1 +- {slope_tol:g} (iterative). Reproduced when every regime passes; "
            "contradicted when one fails.")
    if not recs:
        return _result("6", title, test, "-", "inconclusive", [], "the cost scaling measured no pair")
    verdict = "reproduced" if all(r["passes"] for r in recs) else "contradicted"
    text = "; ".join(f"{r['regime']}: R = {r['time ratio R']:.3g} at n = {r['n']} (K = {r['K = n/B']:g}; counted FLOPs "
                     f"{r['FLOP ratio']:.3g}), slopes {r['slope (one-shot)']:.2f} (one shot) vs {r['slope (iterative)']:.2f} "
                     f"(iterative), peak memory ratio {r['memory ratio']:.3g}" for r in recs)
    return _result("6", title, test, "timings on one quiet machine (the job takes every core)", verdict, recs, text)


def evaluate_claims(tasks: pd.DataFrame, options: dict | None = None, cost_scaling: dict | None = None) -> list[dict]:
    """All six claims from the per-task table; ``options`` is the params' ``report:`` section
    (:class:`Options`), ``cost_scaling`` the JSON of ``iai bench cost`` (claim 6)."""
    o = Options.from_dict(options)
    quality = tasks[~tasks.metric.isin(["wall_time_s", "peak_memory_mb"])]
    cells = Cells(quality, o)
    pred = Cells(prediction(quality), o) if not quality.empty else cells
    return [claim_more_steps(cells), claim_signal(pred), claim_parametric_explicit(pred), claim_history(pred),
            claim_logits(pred), claim_cost_scaling(cost_scaling, o)]

