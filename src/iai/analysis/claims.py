"""The paper's six claims (its section 4), judged on pre-registered comparisons: per-task table -> verdicts.

Each claim's verdict rests on a few *primary* comparisons named in the params before any result
(``report.primary``: family, split, n, the two learners by their columns, the metric, the test).
Method comparisons are made inside the trained horizon (n <= n_ctx = B x K_train); whether a learner
keeps improving *past* its context is its own question (``1b``), never mixed into claim 1's verdict.
Everything else this module computes is *secondary*: reported with its interval, deciding nothing.

The rule (:func:`judge`), the same for every claim:

- each primary comparison is a paired effect of A against B (:func:`iai.analysis.stats.compare`:
  tasks paired, inference over training seeds with a small-sample t interval), with one-sided
  p-values for the claimed direction and for the opposite one;
- Holm's correction over the claim's primaries, each one-sided test at (1 - level) / 2;
- ``reproduced`` when every primary comparison is judged and shows the claimed effect at the
  corrected level; ``contradicted`` when a judged primary comparison shows the opposite at the
  corrected level; ``inconclusive`` otherwise (the explanation says which comparisons decided);
- a comparison is *judged* when both learners have at least ``min_seeds`` training seeds and pass
  the competence gate; an unjudged comparison can make a claim inconclusive, never contradicted;
- the equivalence claim (4, "barely helps") uses two one-sided tests against +- ``history_margin``:
  reproduced when every primary is shown inside the margin, contradicted when one is shown outside.

The competence gate (:meth:`Cells.competence`): on *validation* tasks (the bank's ``valid`` split,
drawn like ``id`` from its own seed stream, never judged on), at the compared n and step, a learner
must close at least ``competence_gap`` of the gap between the family's trivial predictor (the prior
predictive: ``prior``; a random order for the order family) and its reference (Bayes, MAP, sink
search, the true samples). The threshold is stated once in the params.

Claim 6 is judged on the cost benchmark (:mod:`iai.analysis.cost`). :func:`sensitivity` re-judges
every claim under alternative reasonable rules, so a reader sees how fragile each verdict is.
Nothing here is written by hand: change the table, the verdicts follow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from iai.analysis import stats
from iai.analysis.cells import Cells, Comparison, Options, fmt_effect, side_label
from iai.analysis.cost import judge_cost
from iai.analysis.selection import prediction
from iai.core.results import (
    VALID_SPLIT,  # the banks' validation tasks: the gate reads them, no verdict does
)
from iai.core.vocab import LEARNED_REGIMES
from iai.params import IMPLICIT_ONLY_KINDS

VERDICTS = ("reproduced", "contradicted", "inconclusive")

COST_CLAIM = "6"  # judged on the cost benchmark (iai.analysis.cost), not on the table
COST_TITLE = "Iterating is about K times cheaper than one shot over the same data"


@dataclass(frozen=True)
class Claim:
    """A claim judged on the per-task table: its title, the cells it reads (``"all"`` families, or the
    ``"prediction"`` families) and the function that lists its secondary comparisons, whose docstring
    is the claim's stated test (:func:`stated_test`)."""

    key: str
    title: str
    table: str
    secondary: Callable[[Cells], list[Comparison]]

    @property
    def test(self) -> str:
        return " ".join(self.secondary.__doc__.split())


TABLE_CLAIMS: dict[str, Claim] = {}  # in the paper's order (the order of registration below)


def claim(key: str, title: str, table: str = "prediction"):
    """Register claim ``key``: a function of the indexed table -> its secondary comparisons, whose
    docstring states the claim's test."""
    def register(fn):
        if not (fn.__doc__ or "").strip() or key in TABLE_CLAIMS or key == COST_CLAIM:
            raise ValueError(f"claim {key}: {fn.__name__} needs a docstring (the stated test) and a new key")
        TABLE_CLAIMS[key] = Claim(key, title, table, fn)
        return fn
    return register


# ---------------------------------------------------------------------------- the rule


def judge(records: list[Comparison], test: str, options: Options) -> tuple[str, str, list[Comparison]]:
    """(verdict, why, the records with their Holm p-values and what each shows) of one claim from its
    primary comparisons (module docstring)."""
    if not records:
        return "inconclusive", "no primary comparison could be made", []
    alpha = (1 - options.level) / 2
    judged = [r.judged and r.se is not None and math.isfinite(r.se) for r in records]
    if test == "equivalence":
        m = options.history_margin
        p_in = [max(r.estimate.p_greater(-m), r.estimate.p_less(m)) if ok else math.nan
                for r, ok in zip(records, judged)]
        p_out = ([r.estimate.p_less(-m) if ok else math.nan for r, ok in zip(records, judged)]
                 + [r.estimate.p_greater(m) if ok else math.nan for r, ok in zip(records, judged)])
    else:
        p_in = [r.p_a_better if ok else math.nan for r, ok in zip(records, judged)]
        p_out = [r.p_b_better if ok else math.nan for r, ok in zip(records, judged)]
    adj_in, adj_out = stats.holm(p_in), stats.holm(p_out)
    k = len(records)
    out = []
    for i, (r, ok) in enumerate(zip(records, judged)):
        opposite = min(adj_out[i], adj_out[i + k]) if test == "equivalence" else adj_out[i]
        shows = ("claimed" if adj_in[i] <= alpha else "opposite" if opposite <= alpha else "neither") if ok \
            else "not judged"
        out.append(replace(r, p_holm=adj_in[i], p_holm_opposite=opposite, shows=shows))
    against = [r for r in out if r.shows == "opposite"]
    unjudged = [r for r in out if r.shows == "not judged"]
    if against:
        return ("contradicted", f"{len(against)} of {k} primary comparison(s) show the opposite at the corrected "
                "level", out)
    if not unjudged and all(r.shows == "claimed" for r in out):
        return "reproduced", f"all {k} primary comparison(s) show the claimed effect at the corrected level", out
    parts = [f"{sum(r.shows == 'claimed' for r in out)} of {k} show the claimed effect"]
    if unjudged:
        parts.append(f"{len(unjudged)} not judged ({unjudged[0].why})")
    return "inconclusive", "; ".join(parts), out


def primary_comparisons(cells: Cells, claim: str) -> list[Comparison]:
    """The claim's pre-registered comparisons, computed (an absent row gives an unjudged record)."""
    out = []
    for spec in cells.o.primary:
        if str(spec["claim"]) != claim:
            continue
        a, b = dict(spec["a"]), dict(spec["b"])
        rec = cells.compare(spec["family"], spec["split"], int(spec["n"]), a, b, spec.get("metric"))
        if rec is None:
            rec = Comparison(spec["family"], spec["split"], int(spec["n"]),
                             spec.get("metric") or cells.primary.get(spec["family"]), side_label(a), side_label(b),
                             judged=False, why="a side was not evaluated at this cell")
        out.append(replace(rec, role="primary", claim=claim, test=spec.get("test", "a_better"),
                           where=spec.get("why", "")))
    return out


def _text(records: list[Comparison]) -> str:
    out = []
    for r in records:
        # an se of 0 prints as no interval, as it always has (`se or nan`)
        eff = fmt_effect(r.as_dict()) if r.se is not None and math.isfinite(r.se or math.nan) else "no interval"
        out.append(f"{r.family} {r.split} n = {r.n}: {r.a} vs {r.b} ({r.metric}) {eff}, "
                   f"{r.shows or 'not judged'}")
    return "; ".join(out)


def rule_kind(claim: str, options: Options) -> str:
    """The test a claim's primary comparisons name (``a_better`` or ``equivalence``; its first entry decides)."""
    return next((spec.get("test", "a_better") for spec in options.primary if str(spec["claim"]) == claim), "a_better")


def stated_test(claim: str, options: Options) -> str:
    """A claim's test as the report states it: what is compared (the docstring of its registered
    function, :class:`Claim`), then the rule."""
    kind = rule_kind(claim, options)
    rule = ("equivalence: two one-sided tests against +-{:.0%}".format(options.history_margin) if kind == "equivalence"
            else "directional: A better than B")
    return (TABLE_CLAIMS[claim].test + f" Rule: {rule}, Holm over the primaries, one-sided tests at "
            f"{(1 - options.level) / 2:g}.")


def precondition(options: Options) -> str:
    """What a comparison needs to be judged (claims 1 to 5)."""
    return (f">= {options.min_seeds} training seeds; each learner closes >= {options.competence_gap:.0%} of the "
            "trivial-to-reference gap on validation tasks at the compared n")


def _result(claim: str, records: list[Comparison], secondary: list[Comparison], options: Options) -> dict:
    """A claim's result: ``effect`` its primary comparisons, ``numbers`` every comparison (primary, then
    secondary), each a :class:`Comparison`."""
    verdict, why, records = judge(records, rule_kind(claim, options), options)
    return {"claim": claim, "title": TITLES[claim], "test": stated_test(claim, options),
            "precondition": precondition(options), "verdict": verdict,
            "effect": records, "numbers": records + secondary,
            "explanation": f"{why}. Primary: {_text(records)}" + (f". {len(secondary)} secondary comparison(s), "
                                                                  "reported, deciding nothing" if secondary else "")}


# ---------------------------------------------------------------------------- secondary comparisons


def _learned(cells: Cells, **cols) -> pd.DataFrame:
    """Learned learners (not nominal) whose columns match ``cols``."""
    L = cells.learners
    sel = L.regime.isin(LEARNED_REGIMES) & ~L.nominal.astype(bool)
    for k, v in cols.items():
        sel &= L[k].isin(v) if isinstance(v, (list, tuple, set)) else (L[k] == v)
    return L[sel]


def _like(L: pd.DataFrame, r, cols: tuple, **fixed) -> pd.DataFrame:
    """Rows of ``L`` equal to learner ``r`` in ``cols`` and to ``fixed`` elsewhere (a learner's twins)."""
    sel = np.ones(len(L), dtype=bool)
    for c in cols:
        if c in L.columns:
            sel &= (L[c] == getattr(r, c)).to_numpy()
    for c, v in fixed.items():
        sel &= (L[c] == v).to_numpy()
    return L[sel]


def _secondary(cells: Cells, claim: str, family, split, n, a: dict, b: dict, where: str,
               metric=None) -> list[Comparison]:
    rec = cells.compare(family, split, n, a, b, metric)
    if rec is None:
        return []
    return [replace(rec, role="secondary", claim=claim, where=where, shows="secondary")]


def _everywhere(cells: Cells, claim: str, family, a: str, b: str, where: str) -> list[Comparison]:
    """A against B (learner names, iterative) on every split of the family, at n_ctx and the largest n."""
    return [r for split in cells.splits(family) for n in _horizon_ns(cells, family, a)
            for r in _secondary(cells, claim, family, split, n, {"learner": a}, {"learner": b}, where)]


def _horizon_ns(cells, family, learner) -> list[int]:
    ns = cells.ns(family, learner)
    return sorted({n for n in ns if n <= cells.n_ctx(family)} | ({max(ns)} if ns else set()))


def secondary_steps(cells: Cells) -> list[Comparison]:
    """Claim 1: each learned iterative learner after its last doubling of steps, and against its one-shot
    twin (same family, regime, signal, state), every split, n_ctx and the largest n."""
    out = []
    for r in _learned(cells, mode="iterative", history=0).itertuples():
        twins = _learned(cells, mode="one_shot", family=r.family, regime=r.regime, signal=r.signal, state=r.state)
        for split in cells.splits(r.family):
            for n in _horizon_ns(cells, r.family, r.learner):
                steps = cells.last.get((r.family, split, r.learner, "iterative", "all", n), 1)
                if steps >= 2:
                    out += _secondary(cells, "1", r.family, split, n, {"learner": r.learner, "step": int(steps)},
                                      {"learner": r.learner, "step": int(steps) // 2}, f"{r.regime}: last doubling")
                for tw in twins.itertuples():
                    out += _secondary(cells, "1", r.family, split, n, {"learner": r.learner},
                                      {"learner": tw.learner, "mode": "one_shot"}, f"{r.regime}: vs one-shot twin")
    return out


def secondary_gain(cells: Cells) -> list[Comparison]:
    """Claims 1-2: what the hand-written gain b/(n + b) buys: each learner against its twin trained with
    a constant gain (same family, regime, signal, state, history), every split, n_ctx and the largest n."""
    if "gain" not in cells.learners.columns:
        return []
    out = []
    L = _learned(cells, mode="iterative")
    for r in L[L.gain == "inverse_step"].itertuples():
        for c in _like(L, r, ("family", "regime", "signal", "state", "history"), gain="constant").itertuples():
            out += _everywhere(cells, "1", r.family, r.learner, c.learner, f"{r.regime}: gain b/(n+b) vs constant")
    return out


# ---------------------------------------------------------------------------- the claims


@claim("1", "More refinement steps improve results, in- and out-of-distribution, in all three regimes", table="all")
def claim_steps(cells: Cells) -> list[Comparison]:
    """Each regime's iterative learner (n_ctx / B steps) against its one-shot twin (the same architecture
    reading all n_ctx points at once), in and out of distribution, at n = n_ctx."""
    return secondary_steps(cells) + secondary_gain(cells)


@claim("1b", "Iterative learners keep improving past their training context", table="all")
def claim_past_context(cells: Cells) -> list[Comparison]:
    """Each regime's iterative learner after reading 8x its training context against itself at n_ctx, on the
    same rollout (a later step against an earlier one)."""
    return []  # its primaries are the comparisons


@claim("2", "Observations beat gradients in low dimension; gradients help in high dimension or with few points")
def claim_signal(cells: Cells) -> list[Comparison]:
    """Parametric learners reading observations against the same reading gradients: obs better at the lowest d,
    grad better at the highest d, at n = n_ctx."""
    # the secondary comparisons: parametric obs / grad / both at every d and n, split id.
    out = []
    p = _learned(cells, mode="iterative", regime="parametric", history=0, signal=["obs", "grad", "both"])
    p = p[~p.kind.isin(IMPLICIT_ONLY_KINDS) & (p.get("gain", "inverse_step") != "constant")]
    for fam, g in p.groupby("family"):
        by = {r.signal: r.learner for r in g.itertuples()}
        for a, b in (("obs", "grad"), ("both", "obs"), ("both", "grad")):
            if a in by and b in by:
                for n in cells.ns(fam, by[a]):
                    out += _secondary(cells, "2", fam, "id", n, {"learner": by[a]}, {"learner": by[b]},
                                      f"d = {g.dim.iloc[0]}: {a} vs {b}")
    return out


@claim("3", "Parametric beats explicit")
def claim_regimes(cells: Cells) -> list[Comparison]:
    """Parametric against explicit iterative learners of the same signal (obs with obs, both with both), at n =
    n_ctx."""
    # the secondary comparisons: parametric against explicit iterative learners of the same family and signal.
    out = []
    par = _learned(cells, mode="iterative", regime="parametric", history=0)
    for e in _learned(cells, mode="iterative", regime="explicit", history=0).itertuples():
        for p in _like(par, e, ("family", "signal", "gain")).itertuples():
            out += _everywhere(cells, "3", e.family, p.learner, e.learner, f"parametric vs explicit ({e.signal})")
    return out


@claim("4", "A history window barely helps")
def claim_history(cells: Cells) -> list[Comparison]:
    """The learner with a history window against the same learner without, at n = n_ctx."""
    # the secondary comparisons: each learner with a window against its Markovian twin.
    out = []
    L = _learned(cells, mode="iterative")
    for h in L[L.history > 0].itertuples():
        base = _like(L, h, ("family", "regime", "signal", "state", "gain"), history=0)
        for b in base.itertuples():
            out += _everywhere(cells, "4", h.family, h.learner, b.learner, "history window vs Markovian")
    return out


@claim("5", "Logits are the best implicit state")
def claim_states(cells: Cells) -> list[Comparison]:
    """The implicit learner carrying logits against the same learner carrying probabilities (a convex mixture,
    and the same residual update renormalized on the simplex), classification families, error rate and NLL,
    at n = n_ctx."""
    # the secondary comparisons: implicit logits against every other state, classification families, error rate and NLL.
    out = []
    imp = _learned(cells, mode="iterative", regime="implicit", history=0)
    for fam, g in imp[~imp.kind.isin(IMPLICIT_ONLY_KINDS)].groupby("family"):
        if cells.primary.get(fam) != "error_rate":
            continue
        for lg in g[g.state == "logits"].itertuples():
            for other in g[g.state != "logits"].itertuples():
                for split in cells.splits(fam):
                    for n in _horizon_ns(cells, fam, lg.learner):
                        for metric in ("error_rate", "nll"):
                            out += _secondary(cells, "5", fam, split, n, {"learner": lg.learner},
                                              {"learner": other.learner}, f"logits vs {other.state}", metric)
    return out


TITLES = {**{k: c.title for k, c in TABLE_CLAIMS.items()}, COST_CLAIM: COST_TITLE}
CLAIMS = tuple(TITLES)


def _cells(tasks: pd.DataFrame, o: Options) -> tuple[Cells, Cells]:
    """The indexed table, and its prediction families (claims 2 to 5)."""
    quality = tasks[~tasks.metric.isin(["wall_time_s", "peak_memory_mb"])]
    cells = Cells(quality, o)
    return cells, (Cells(prediction(quality), o) if not quality.empty else cells)


def _judge_all(cells: Cells, pred: Cells, o: Options, cost_scaling: dict | None, secondary: bool) -> list[dict]:
    cells.o = pred.o = o
    out = []
    for key, c in TABLE_CLAIMS.items():
        records = primary_comparisons(cells, key)
        more = c.secondary(cells if c.table == "all" else pred) if secondary else []
        out.append(_result(key, records, more, o))
    out.append(judge_cost(cost_scaling, {"level": o.level, "cost_flop_factor": o.cost_flop_factor,
                                         "cost_slope_tolerance": o.cost_slope_tolerance}))
    return out


def evaluate_claims(tasks: pd.DataFrame, options: dict | Options | None = None,
                    cost_scaling: dict | None = None, secondary: bool = True) -> list[dict]:
    """Every claim (:data:`CLAIMS`, in order) from the per-task table; ``options`` is the params'
    ``report:`` section (:class:`Options`), ``cost_scaling`` the JSON of ``iai bench cost`` (claim 6);
    ``secondary=False`` computes the primary comparisons only (the verdicts are the same)."""
    o = options if isinstance(options, Options) else Options.from_dict(options)
    return _judge_all(*_cells(tasks, o), o, cost_scaling, secondary)


SENSITIVITY = {  # alternative reasonable rules: each verdict re-judged under each (fixed with the rule)
    "competence gap 0.25": {"competence_gap": 0.25},
    "competence gap 0.75": {"competence_gap": 0.75},
    "level 0.90": {"level": 0.90},
    "level 0.99": {"level": 0.99},
    "n at the largest evaluated": {"n": "largest"},
}


def sensitivity(tasks: pd.DataFrame, options: dict | None, cost_scaling: dict | None = None) -> list[dict]:
    """Each claim's verdict under the rule in force and under each alternative of :data:`SENSITIVITY`."""
    o = Options.from_dict(options)
    largest = int(tasks.loc[tasks.split != VALID_SPLIT, "n_train"].max()) if not tasks.empty else None
    cells, pred = _cells(tasks, o)  # indexed once: only the rules change
    table = {"rule in force": _judge_all(cells, pred, o, cost_scaling, secondary=False)}
    for name, change in SENSITIVITY.items():
        if change.get("n") == "largest":
            unstepped = [p.get("a", {}).get("step") is None and p.get("b", {}).get("step") is None
                         for p in o.primary]
            prim = tuple({**p, "n": largest} if plain else p for p, plain in zip(o.primary, unstepped))
            alt = replace(o, primary=prim)
        else:
            alt = replace(o, **change)
        table[name] = _judge_all(cells, pred, alt, cost_scaling, secondary=False)
    return [{"claim": c["claim"], **{name: res[i]["verdict"] for name, res in table.items()}}
            for i, c in enumerate(table["rule in force"])]
