"""The paper's six claims (PAPER.md section 4), each a pure function: results table -> verdict.

Every claim returns ``{"claim", "title", "test", "verdict", "numbers", "explanation"}`` where
``verdict`` is ``reproduced``, ``not reproduced`` or ``not measured`` (the rows the test needs
are absent), ``numbers`` the measured comparisons (a list of flat records) and ``test`` the rule,
written out for the report. Nothing here is written by hand: change the table, the verdict follows.

Shared conventions (see :func:`compare`):

- Quality is the family's *primary metric* (:func:`iai.analysis.selection.primary_metric`):
  ``excess_risk`` for regression, ``error_rate`` for classification, ``mmd`` for generation
  (lower is better), ``edge_accuracy`` for the topological order (*higher* is better), taken at the
  learner's *final step* at a given n, unless a claim says otherwise. "The largest n" is the
  largest n the compared rows share.
- Learned learners are compared in their Markovian form (``history == 0``) and, unless stated,
  iterative mode. Several learners of one variant in one family: the best one counts.
- A beats B when A is better than B (lower, or higher for a higher-is-better metric) by more than
  ``z`` standard errors of the difference, sqrt(sem_A^2 + sem_B^2) (``z = 2`` by default; a NaN
  sem counts as 0). A comparison is a *win*, a *tie* or a *loss*.
- A set of comparisons *holds* when wins are more than half and there is no loss.
- Claim 1 (more steps) covers every family, the implicit-only ones (order, generation) included in
  the implicit regime's rows. Claims 2 to 6 concern the prediction families (regression,
  classification) only: the rows of the implicit-only families are dropped before they are tested
  (:func:`iai.analysis.selection.prediction`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from iai.analysis.selection import (LEARNED, best_of, better_sign, final_step, learned, loglog_slope, prediction,
                                    quality, tag)

VERDICTS = ("reproduced", "not reproduced", "not measured")


ONLY = " Prediction families only (regression, classification; not the order or generation families)."
MARGIN = "A's margin / SE"  # (B - A) / SE, or (A - B) / SE for a higher-is-better metric


def compare(a: pd.Series, b: pd.Series, z: float = 2.0) -> dict:
    """Is A better than B (lower, or higher for a higher-is-better metric such as edge_accuracy) by
    more than z standard errors? -> a flat record for the report."""
    se = math.sqrt(np.nansum([a["sem"] ** 2, b["sem"] ** 2]))
    diff = (b["value"] - a["value"]) * better_sign(str(a["metric"]))
    score = diff / se if se > 0 else math.copysign(math.inf, diff) if diff else 0.0
    outcome = "win" if score > z else "loss" if score < -z else "tie"
    return {"A": a["label"], "value A": a["value"], "B": b["label"], "value B": b["value"],
            "metric": a["metric"], MARGIN: score, "outcome": outcome}


def holds(records: list[dict]) -> bool:
    wins = sum(r["outcome"] == "win" for r in records)
    return wins * 2 > len(records) and not any(r["outcome"] == "loss" for r in records)


def _at_largest_common_n(a: pd.DataFrame, b: pd.DataFrame) -> int | None:
    common = set(a.n_train) & set(b.n_train)
    return max(common) if common else None


def _pairs(a: pd.DataFrame, b: pd.DataFrame, on: list[str], z: float, where: str) -> list[dict]:
    """Compare every A row with the B row that shares ``on`` (and the split), at their largest common n."""
    out = []
    for key, ga in a.groupby(on, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        gb = b[(b[on] == pd.Series(key, index=on)).all(axis=1)]
        n = _at_largest_common_n(ga, gb)
        if n is None:
            continue
        for split in sorted(set(ga.split) & set(gb.split)):
            for _, ra in ga[(ga.n_train == n) & (ga.split == split)].iterrows():
                for _, rb in gb[(gb.n_train == n) & (gb.split == split)].iterrows():
                    out.append({"family": ra["family"], "split": split, "n": n, "where": where,
                                **compare(ra, rb, z)})
    return out


def _result(claim: str, title: str, test: str, verdict: str, numbers: list[dict], explanation: str) -> dict:
    assert verdict in VERDICTS
    numbers = [{k: v.item() if isinstance(v, np.generic) else v for k, v in r.items()} for r in numbers]
    return {"claim": claim, "title": title, "test": test, "verdict": verdict, "numbers": numbers,
            "explanation": explanation}


def _tally(records: list[dict]) -> str:
    n = {o: sum(r["outcome"] == o for r in records) for o in ("win", "tie", "loss")}
    return f"better in {n['win']} of {len(records)}, tied in {n['tie']}, worse in {n['loss']}"


# ---------------------------------------------------------------------------- the six claims


def claim_more_steps(df: pd.DataFrame, z: float = 2.0) -> dict:
    """1. More refinement steps improve results, in- and out-of-distribution, in all three regimes.

    (a) For every learned iterative learner, in every split, at the largest n it was rolled out
    over more than one step: the final step beats step 1. (b) Where a one-shot learner of the same
    regime, signal and state is present with context 'capped' (its training context): the
    iterative learner's final step beats it at their largest common n, in every split.
    Reproduced when (a) holds in every regime measured, and (b) holds where measured.
    Every family counts, the implicit-only ones (order: edge accuracy, higher is better; generation:
    MMD) in the implicit regime's rows.
    """
    q = tag(quality(df), lambda d: d.learner + " step " + d.step.astype(str))
    it = learned(q)
    steps, missing = [], [r for r in LEARNED if r not in set(it.regime)]
    for (fam, regime, name, split), g in it.groupby(["family", "regime", "learner", "split"], sort=True):
        multi = g.groupby("n_train")["step"].max()
        if not (multi > 1).any():
            continue
        n = multi[multi > 1].index.max()
        at = g[g.n_train == n]
        first, last = at[at.step == 1], at[at.step == at.step.max()]
        if len(first):
            steps.append({"family": fam, "split": split, "n": n, "where": f"{regime}: final step vs step 1",
                          **compare(last.iloc[0], first.iloc[0], z)})
    capped = tag(learned(quality(df), "one_shot"))
    capped = capped[capped.context == "capped"]
    one_shot = _pairs(tag(final_step(it)), capped, ["family", "regime", "signal", "state"], z,
                      "iterative (final step) vs one-shot (capped)")
    test = ("(a) each learned iterative learner, each split, at the largest n with more than one step: "
            f"final step vs step 1; (b) iterative final step vs one-shot [capped] of the same regime/signal/"
            f"state at the largest common n, each split, every family. 'Win' = better (lower; higher for edge_accuracy) "
            f"by > {z:g} SE. Reproduced when, in every "
            "regime measured, (a) has more wins than half and no loss, and (b) likewise where measured.")
    title = "More refinement steps improve results, in- and out-of-distribution, in all three regimes"
    if not steps:
        return _result("1", title, test, "not measured", [], "no learned iterative learner with more than one step")
    by_regime = {r: [s for s in steps if s["where"].startswith(r)] for r in LEARNED}
    by_regime = {r: v for r, v in by_regime.items() if v}
    ok = all(holds(v) for v in by_regime.values()) and (holds(one_shot) if one_shot else True)
    parts = [f"final step vs step 1, {r}: {_tally(v)}" for r, v in by_regime.items()]
    parts.append(f"iterative vs one-shot [capped]: {_tally(one_shot)}" if one_shot
                 else "iterative vs one-shot [capped]: not measured")
    if missing:
        parts.append(f"regime(s) not measured: {', '.join(missing)}")
    return _result("1", title, test, "reproduced" if ok else "not reproduced", steps + one_shot, "; ".join(parts))


def claim_signal(df: pd.DataFrame, z: float = 2.0) -> dict:
    """2. Observations beat gradients in low dimension; gradients help in high dimension or with few
    points; both together is often best.

    Parametric iterative learners with signals obs/grad/both, split id, final step, grouped by
    family kind; needs families of one kind at two or more input dimensions d. (a) at the lowest
    d and the largest n: obs beats grad. (b) at the highest d and the smallest n: the better of
    grad and both beats obs. Reproduced when (a) and (b) each have more wins than half and no loss.
    'Both is best' (lowest of the three) is counted over every (family, n) and reported, not judged.
    """
    q = tag(final_step(learned(quality(prediction(df)))), lambda d: d.learner + " (d=" + d.dim.astype(str) + ")")
    p = q[(q.regime == "parametric") & q.signal.isin(["obs", "grad", "both"]) & (q.split == "id")]
    p = best_of(p, ["family", "signal", "n_train"])
    low, high, both_best, cells = [], [], 0, 0
    for kind, g in p.groupby("kind", sort=True):
        dims = sorted({d for d, gd in g.groupby("dim") if {"obs", "grad"} <= set(gd.signal)})
        if len(dims) < 2:
            continue
        for fam, gf in g[g.dim == dims[0]].groupby("family"):
            s = {sig: gs.set_index("n_train") for sig, gs in gf.groupby("signal")}
            ns = sorted(set(s["obs"].index) & set(s["grad"].index))
            if ns:
                low.append({"family": fam, "where": f"lowest d={dims[0]}, largest n", "n": ns[-1],
                            **compare(s["obs"].loc[ns[-1]], s["grad"].loc[ns[-1]], z)})
        for fam, gf in g[g.dim == dims[-1]].groupby("family"):
            s = {sig: gs.set_index("n_train") for sig, gs in gf.groupby("signal")}
            ns = sorted(set(s.get("obs", pd.DataFrame()).index) & set(s["grad"].index))
            if ns:
                cand = [s[k].loc[ns[0]] for k in ("grad", "both") if k in s and ns[0] in s[k].index]
                best = min(cand, key=lambda r: r["value"])
                high.append({"family": fam, "where": f"highest d={dims[-1]}, smallest n", "n": ns[0],
                             **compare(best, s["obs"].loc[ns[0]], z)})
        for (_, _), gc in g.groupby(["family", "n_train"]):
            if set(gc.signal) == {"obs", "grad", "both"}:
                cells += 1
                both_best += gc.loc[gc.value.idxmin(), "signal"] == "both"
    test = ("Parametric iterative learners, split id, final step, per family kind with >= 2 input dims d: "
            f"(a) lowest d, largest n: obs vs grad; (b) highest d, smallest n: best of grad/both vs obs. "
            f"'Win' = lower by > {z:g} SE. Reproduced when (a) and (b) each have more wins than half and no loss." + ONLY)
    title = "Observations beat gradients in low dimension; gradients help in high dimension or with few points"
    if not low or not high:
        return _result("2", title, test, "not measured", low + high,
                       "needs parametric obs and grad learners on families of one kind at two or more dims")
    ok = holds(low) and holds(high)
    text = (f"(a) obs vs grad at the lowest d: {_tally(low)}; (b) grad or both vs obs at the highest d, smallest n: "
            f"{_tally(high)}; "
            f"both was best in {both_best} of {cells} (family, n) cells")
    return _result("2", title, test, "reproduced" if ok else "not reproduced", low + high, text)


def _matched(df: pd.DataFrame, z: float, on: list[str], a_sel, b_sel, where: str) -> list[dict]:
    q = tag(final_step(learned(quality(prediction(df)))))
    return _pairs(best_of(q[a_sel(q)], on + ["split", "n_train"]), best_of(q[b_sel(q)], on + ["split", "n_train"]),
                  on, z, where)


def claim_parametric_explicit(df: pd.DataFrame, z: float = 2.0) -> dict:
    """3. Parametric beats explicit.

    Iterative learners at matched signal (same family and signal), best learner of each regime,
    final step, at their largest common n, in every split. Reproduced when parametric has more wins
    than half and no loss (a loss: explicit lower by more than z SE).
    """
    recs = _matched(df, z, ["family", "signal"], lambda q: q.regime == "parametric",
                    lambda q: q.regime == "explicit", "parametric vs explicit, matched signal")
    test = (f"Parametric vs explicit iterative learners with the same family and signal, final step, largest "
            f"common n, every split. 'Win' = parametric lower by > {z:g} SE. Reproduced when wins are more "
            "than half and there is no loss." + ONLY)
    title = "Parametric beats explicit"
    if not recs:
        return _result("3", title, test, "not measured", [], "no parametric and explicit learners with a common signal")
    return _result("3", title, test, "reproduced" if holds(recs) else "not reproduced", recs,
                   f"parametric vs explicit: {_tally(recs)}")


def claim_history(df: pd.DataFrame, z: float = 2.0, tolerance: float = 0.10) -> dict:
    """4. A history window barely helps.

    Each learner with a history window (history > 0) against the Markovian learner of the same
    family, regime, signal and state, final step, largest common n, every split. The window
    *helps* when it is lower by more than z SE and by more than ``tolerance`` (relative).
    Reproduced when it helps in no comparison. (A window that hurts is consistent with the claim
    and is reported as a change.)
    """
    q = tag(final_step(quality(prediction(df))))
    hist, base = learned(q, history=True), learned(q)
    recs = _pairs(hist, base, ["family", "regime", "signal", "state"], z, "history window vs Markovian")
    for r in recs:
        rel = (r["value A"] - r["value B"]) / r["value B"] if r["value B"] else math.nan  # lower is better here
        r["relative change (%)"] = 100 * rel
        r["helps"] = bool(r["outcome"] == "win" and rel < -tolerance)
    test = (f"History > 0 learners vs the Markovian learner with the same family/regime/signal/state, final "
            f"step, largest common n, every split. 'Helps' = lower by > {z:g} SE and by > {tolerance:.0%}. "
            "Reproduced when the window helps in no comparison." + ONLY)
    title = "A history window barely helps"
    if not recs:
        return _result("4", title, test, "not measured", [], "no learner with a history window and its Markovian twin")
    changes = [r["relative change (%)"] for r in recs]
    text = (f"relative change of the error with the window: median {np.median(changes):+.1f}%, range "
            f"{min(changes):+.1f}% to {max(changes):+.1f}%; helps in {sum(r['helps'] for r in recs)} of {len(recs)}")
    return _result("4", title, test, "not reproduced" if any(r["helps"] for r in recs) else "reproduced", recs, text)


def claim_logits(df: pd.DataFrame, z: float = 2.0) -> dict:
    """5. Logits are the best implicit state.

    Implicit iterative learners, best learner per state, final step: logits against each other
    state (probs, hidden) of the same family at their largest common n, every split. Reproduced
    when logits has more wins than half and no loss.
    """
    recs = []
    for other in ("probs", "hidden"):
        recs += _matched(df, z, ["family"], lambda q: (q.regime == "implicit") & (q.state == "logits"),
                         lambda q, o=other: (q.regime == "implicit") & (q.state == o), f"logits vs {other}")
    test = (f"Implicit iterative learners: state logits vs probs and vs hidden, same family, final step, largest "
            f"common n, every split. 'Win' = logits lower by > {z:g} SE. Reproduced when wins are more than half "
            "and there is no loss." + ONLY)
    title = "Logits are the best implicit state"
    if not recs:
        return _result("5", title, test, "not measured", [], "no implicit learner with state logits and another state")
    return _result("5", title, test, "reproduced" if holds(recs) else "not reproduced", recs,
                   f"logits vs the other states: {_tally(recs)}")


def _cost_pair(it: pd.DataFrame, one: pd.DataFrame, factor: float, slope_tol: float) -> dict | None:
    """Claim 6's numbers for one (iterative, one-shot) pair of cost rows; None without a common n."""
    t_it, t_os = (g[g.metric == "wall_time_s"].set_index("n_train") for g in (it, one))
    m_it, m_os = (g[g.metric == "peak_memory_mb"].set_index("n_train")["value"] for g in (it, one))
    ns = np.array(sorted(set(t_it.index) & set(t_os.index)))
    if len(ns) == 0:
        return None
    n = ns[-1]
    k, ratio = n / t_it.loc[n, "batch_size"], t_os.loc[n, "value"] / t_it.loc[n, "value"]
    s_it, s_os = (loglog_slope(ns, t.loc[ns, "value"].to_numpy()) for t in (t_it, t_os))
    mem = m_os.get(n, math.nan) / m_it[n] if m_it.get(n, 0) > 0 else math.nan  # peak above baseline; may be 0
    ok = (k / factor <= ratio <= k * factor) or (abs(s_os - 2) <= slope_tol and abs(s_it - 1) <= slope_tol)
    return {"n": int(n), "K = n/B": k, "time ratio R": ratio, "slope (iterative)": s_it, "slope (one-shot)": s_os,
            "memory ratio": mem, "passes": bool(ok)}


def claim_cost(df: pd.DataFrame, factor: float = 3.0, slope_tol: float = 0.3) -> dict:
    """6. Iterating is about K times cheaper than one shot over the same data.

    Cost rows (split id, wall_time_s): each learned iterative learner against each one-shot learner
    (context 'all') of the same family and regime (``iai bench`` times one such pair per regime),
    over their common n. At the largest n, K = n / B (B: the iterative learner's mini-batch) and R = t_one_shot / t_iterative.
    A pair passes when K/factor <= R <= K*factor, or when the fitted log-log slopes of wall time
    against n are within ``slope_tol`` of 2 (one-shot) and 1 (iterative). Reproduced when all pass.
    """
    df = prediction(df)
    c = final_step(df[(df.split == "id") & df.regime.isin(LEARNED) & df.metric.isin(["wall_time_s", "peak_memory_mb"])])
    it, os_ = c[c["mode"] == "iterative"], c[(c["mode"] == "one_shot") & (c.context == "all")]
    recs = []
    for (fam, regime, name), ga in it.groupby(["family", "regime", "learner"], sort=True):
        for other, gb in os_[(os_.family == fam) & (os_.regime == regime)].groupby("learner", sort=True):
            r = _cost_pair(ga, gb, factor, slope_tol)
            if r:
                recs.append({"family": fam, "iterative": name, "one-shot": other, **r})
    test = (f"Wall time (split id) of each learned iterative learner and the one-shot [all] learner of its regime at their "
            f"largest common n: time ratio R = t_one_shot / t_iterative against K = n/B (memory ratio likewise, "
            f"reported only). Passes when K/{factor:g} <= R <= "
            f"{factor:g}K, or when the log-log slopes of time against n are 2 +- {slope_tol:g} (one-shot) and "
            f"1 +- {slope_tol:g} (iterative). Reproduced when every pair passes." + ONLY)
    title = "Iterating is about K times cheaper than one shot over the same data"
    if not recs:
        return _result("6", title, test, "not measured", [], "no wall-time rows for an iterative learner and its one-shot twin")
    text = "; ".join(f"{r['family']}/{r['iterative']}: R = {r['time ratio R']:.3g} at n = {r['n']} (K = {r['K = n/B']:g}), "
                     f"slopes {r['slope (one-shot)']:.2f} (one-shot) vs {r['slope (iterative)']:.2f} (iterative), "
                     f"peak memory ratio {r['memory ratio']:.3g}" for r in recs)
    return _result("6", title, test, "reproduced" if all(r["passes"] for r in recs) else "not reproduced", recs, text)


def claim_cost_scaling(scaling: dict, factor: float = 3.0, slope_tol: float = 0.3) -> dict:
    """6. Iterating is about K times cheaper than one shot, judged where attention dominates.

    ``scaling`` is the JSON of ``iai bench cost`` (one iterative learner per regime against its
    one-shot twin, n doubling to tens of thousands; its ``claim6`` holds the fitted slopes and
    ratios). The rule is :func:`claim_cost`'s, per regime at the largest n where both ran: the time
    ratio R within K/factor .. K*factor, or log-log slopes of time within ``slope_tol`` of 2 (one
    shot) and 1 (iterative) over the fitted range. Reproduced when every regime passes.
    """
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
            f"2 +- {slope_tol:g} (one shot) and 1 +- {slope_tol:g} (iterative). Reproduced when every regime passes.")
    title = "Iterating is about K times cheaper than one shot over the same data"
    if not recs:
        return _result("6", title, test, "not measured", [], "the cost scaling measured no pair")
    text = "; ".join(f"{r['regime']}: R = {r['time ratio R']:.3g} at n = {r['n']} (K = {r['K = n/B']:g}; counted FLOPs "
                     f"{r['FLOP ratio']:.3g}), slopes {r['slope (one-shot)']:.2f} (one shot) vs {r['slope (iterative)']:.2f} "
                     f"(iterative), peak memory ratio {r['memory ratio']:.3g}" for r in recs)
    return _result("6", title, test, "reproduced" if all(r["passes"] for r in recs) else "not reproduced", recs, text)


def evaluate_claims(df: pd.DataFrame, options: dict | None = None, cost_scaling: dict | None = None) -> list[dict]:
    """All six claims; ``options`` (the params' ``report:`` section) may set ``significance``
    (z, default 2), ``history_tolerance`` (0.10), ``cost_factor`` (3) and ``cost_slope_tolerance`` (0.3).
    With ``cost_scaling`` (the JSON of ``iai bench cost``) claim 6 is judged on it, where attention
    dominates; without it, on the table's own cost rows."""
    o = options or {}
    z = float(o.get("significance", 2.0))
    factor, tol = float(o.get("cost_factor", 3.0)), float(o.get("cost_slope_tolerance", 0.3))
    cost = claim_cost_scaling(cost_scaling, factor, tol) if cost_scaling else claim_cost(df, factor, tol)
    return [claim_more_steps(df, z), claim_signal(df, z), claim_parametric_explicit(df, z),
            claim_history(df, z, float(o.get("history_tolerance", 0.10))), claim_logits(df, z), cost]
