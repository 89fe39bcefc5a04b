"""The per-task table indexed for the claims: cells of (family, split, learner, n, metric, step), the
paired comparison of two cells (:class:`Comparison`), the competence gate, and the rules those read
(:class:`Options`, the params' ``report:`` section, fixed before any result). :mod:`iai.analysis.claims`
judges on them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from iai.analysis import stats
from iai.analysis.selection import REFERENCE, better_sign, primary_metric
from iai.core.results import (
    VALID_SPLIT,  # the banks' validation tasks: the gate reads them, no verdict does
)
from iai.core.vocab import LEARNED_REGIMES
from iai.params import ReportConfig

RELATIVE = stats.RELATIVE
TRIVIAL = ("prior", "random_order")  # a family's trivial predictor, by preference


@dataclass(frozen=True)
class Options(ReportConfig):
    """The claims' stated rules: the params' ``report:`` section (its fields and defaults are
    :class:`iai.params.ReportConfig`'s), fixed before any result, with the training context resolved."""

    train_context: int = 128          # n_ctx = B x K_train (iai.analysis.report: the recipe's; 128: the default's)

    @classmethod
    def from_dict(cls, values: dict | None) -> "Options":
        values = dict(values or {})
        known = {k: values[k] for k in cls.__dataclass_fields__ if k in values}
        known["primary"] = tuple(known.get("primary") or ())
        return cls(**known)

    def rules(self) -> dict:
        """The rules in force, as recorded in ``reports/comparisons.json`` with their hash (the hash also in
        ``metrics.json``)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["primary"] = [dict(p) for p in self.primary]
        return out

    def rules_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.rules(), sort_keys=True, default=str).encode()).hexdigest()[:16]



@dataclass(frozen=True)
class CellRows:
    """One cell's per-task rows: parallel arrays of training seed, task index and value."""

    seed: np.ndarray
    task: np.ndarray
    value: np.ndarray


@dataclass(frozen=True)
class Comparison:
    """Side A against side B at one (family, split, n, metric): the paired effect (``estimate``; None where
    a side was not evaluated at the cell), whether it is judged and why, and what the claims add (its
    role, claim and test, the Holm-corrected p-values and what it shows, :func:`iai.analysis.claims.judge`).

    The report, ``comparisons.json`` and ``claims.md`` read its dict form (:meth:`as_dict`)."""

    family: str
    split: str
    n: int
    metric: str | None
    a: str  # side A as the report names it (:func:`side_label`)
    b: str
    judged: bool
    why: str
    estimate: stats.Effect | None = None
    role: str | None = None  # primary | secondary
    claim: str | None = None
    test: str | None = None  # a primary's: a_better | equivalence
    where: str | None = None  # what is compared, in words
    p_holm: float | None = None  # a primary's, once judged
    p_holm_opposite: float | None = None
    shows: str | None = None  # claimed | opposite | neither | not judged; secondary

    @property
    def se(self) -> float | None:
        return None if self.estimate is None else self.estimate.se

    @property
    def p_a_better(self) -> float:
        """One-sided p-value for 'A better' (the effect < 0)."""
        return self.estimate.p_less()

    @property
    def p_b_better(self) -> float:
        return self.estimate.p_greater()

    @property
    def outcome(self) -> str:
        e = self.estimate
        return "A better" if e.hi < 0 else "B better" if e.lo > 0 else "no clear difference"

    def as_dict(self) -> dict[str, Any]:
        """The comparison as the report writes it: ``A``, ``B``, the effect's numbers (``effect``, ``lo``,
        ``hi``, ``se``, ..., ``p``, ``p_a_better``, ``p_b_better``, ``outcome``), ``judged``, ``why``, then
        the claims' fields that are set (``role``, ``claim``, ``test``, ``where``, ``p_holm``,
        ``p_holm_opposite``, ``shows``); ``se`` is None where a side was not evaluated."""
        out: dict[str, Any] = {"family": self.family, "split": self.split, "n": self.n, "metric": self.metric,
                               "A": self.a, "B": self.b}
        if self.estimate is not None:
            out.update(self.estimate.as_dict())
            out.update(p_a_better=self.p_a_better, p_b_better=self.p_b_better, outcome=self.outcome)
        out.update(judged=self.judged, why=self.why)
        if self.estimate is None:
            out["se"] = None
        for key in ("role", "claim", "test", "where", "p_holm", "p_holm_opposite", "shows"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in out.items()}


_CELL = ["family", "split", "learner", "mode", "context", "n_train", "metric", "step"]


class Cells:
    """The per-task table indexed by (family, split, learner, mode, context, n, metric, step); a
    learner's *final step* at n is the last step it was scored at."""

    def __init__(self, tasks: pd.DataFrame, options: Options):
        self.o = options
        t = tasks.reset_index(drop=True)
        # cell -> its rows' positions: one groupby here, where a MultiIndex lookup per cell (thousands
        # of cells, with the sensitivity's re-judging) took most of the report's time
        self._seed, self._task = t["seed"].to_numpy(), t["task"].to_numpy()
        self._value = t["value"].to_numpy(dtype=float)
        self._cells = t.groupby(_CELL, sort=False, dropna=False).indices
        self.last = t.groupby(["family", "split", "learner", "mode", "context", "n_train"])["step"].max().to_dict()
        self.primary = {f: primary_metric(t, f) for f in t.family.unique()}
        self.final = t.drop_duplicates(["family", "split", "learner", "mode", "context", "n_train", "batch_size"])
        cols = ["family", "kind", "dim", "learner", "regime", "signal", "state", "history", "nominal", "mode"]
        cols += ["gain"] if "gain" in t.columns else []
        self.learners = t.drop_duplicates(["family", "learner", "mode"])[cols]
        self._present = self.learners.groupby("family")["learner"].agg(set).to_dict()
        self._learned = {(f, n) for f, n, r in zip(self.learners.family, self.learners.learner, self.learners.regime)
                         if r in LEARNED_REGIMES}
        self.seeds = t.groupby(["family", "learner", "mode"])["seed"].nunique().to_dict()

    def rows(self, family, split, learner, n, metric=None, mode="iterative", context="all",
             step=None) -> "CellRows | None":
        """Per-task rows (seed, task, value) at one cell (the final step unless ``step``); None if absent."""
        step = step if step is not None else self.last.get((family, split, learner, mode, context, n))
        key = (family, split, learner, mode, context, n, metric or self.primary.get(family), step)
        if step is None or key not in self._cells:
            return None
        at = self._cells[key]
        return CellRows(self._seed[at], self._task[at], self._value[at])

    def ns(self, family, learner, mode="iterative", context="all") -> list[int]:
        f = self.final
        sel = (f.family == family) & (f.learner == learner) & (f["mode"] == mode) & (f.context == context)
        return sorted(int(n) for n in f.loc[sel, "n_train"].unique())

    def splits(self, family) -> list[str]:
        s = self.final.loc[(self.final.family == family) & (self.final.split != VALID_SPLIT), "split"].unique()
        return sorted(s, key=lambda x: (x != "id", x))

    def judged(self, family, learner, mode="iterative") -> bool:
        return self.seeds.get((family, learner, mode), 0) >= self.o.min_seeds

    def _first(self, family, names) -> str | None:
        present = self._present.get(family, set())
        return next((r for r in names if r in present), None)

    def reference(self, family) -> str | None:
        return self._first(family, REFERENCE)

    def n_ctx(self, family) -> int:
        capped = self.final[(self.final.family == family) & (self.final["mode"] == "one_shot")
                            & (self.final.context == "capped")]
        return int(capped.batch_size.max()) if not capped.empty else self.o.train_context

    def competence(self, family, learner, n, mode="iterative", context="all", step=None) -> tuple[bool, str]:
        """(competent?, why): on validation tasks at n (and step), the learner closes at least
        ``competence_gap`` of the gap between the trivial predictor and the reference."""
        ref, triv, metric = self.reference(family), self._first(family, TRIVIAL), self.primary.get(family)
        if ref is None or triv is None:
            return False, f"{family}: no reference or trivial predictor to gate against"
        a = self.rows(family, VALID_SPLIT, learner, n, metric, mode, context, step)
        r, z = self.rows(family, VALID_SPLIT, ref, n, metric), self.rows(family, VALID_SPLIT, triv, n, metric)
        if a is None or r is None or z is None:
            return False, f"{family}/{learner}: not evaluated on validation tasks at n = {n}"
        sign = better_sign(metric)
        la, lr, lz = (sign * float(x.value.mean()) for x in (a, r, z))
        if not lz > lr:
            return False, f"{family}: the trivial predictor {triv} is not worse than {ref} at n = {n}"
        gap = (lz - la) / (lz - lr)
        ok = gap >= self.o.competence_gap
        return bool(ok), f"{learner} closes {gap:.0%} of the {triv}-to-{ref} gap at n = {n} (validation tasks)"

    def matrix(self, rows: "CellRows", tasks: np.ndarray, what: str) -> np.ndarray:
        """Rows of one cell -> values ``[seeds, tasks]``; a missing (seed, task) is an error."""
        seeds, s_at = np.unique(rows.seed, return_inverse=True)
        M = np.full((len(seeds), len(tasks)), np.nan)
        M[s_at, np.searchsorted(tasks, rows.task)] = rows.value  # tasks: sorted, holding every task of rows
        if np.isnan(M).any():
            s, t = np.argwhere(np.isnan(M))[0]
            raise ValueError(f"{what}: no value for seed {seeds[s]}, task {tasks[t]} "
                             "(every seed must cover every task)")
        return M

    def compare(self, family, split, n, a: dict, b: dict, metric=None) -> Comparison | None:
        """The paired effect of side a against side b (``{learner, mode, context, step}``) at one
        (family, split, n); None where a side's rows are absent."""
        metric = metric or self.primary.get(family)
        sides = []
        for s in (a, b):
            s = {"mode": "iterative", "context": "all", "step": None, **s}
            rows = self.rows(family, split, s["learner"], n, metric, s["mode"], s["context"], s["step"])
            if rows is None or not len(rows.value):
                return None
            sides.append((s, rows))
        (sa, ra), (sb, rb) = sides
        tasks = np.union1d(ra.task, rb.task)
        where = f"{family}/{split}/n{n}"
        A = self.matrix(ra, tasks, f"{where}: {sa['learner']}")
        B = self.matrix(rb, tasks, f"{where}: {sb['learner']}")
        same_model = (sa["learner"], sa["mode"]) == (sb["learner"], sb["mode"])
        eff = stats.compare(A, B, metric in RELATIVE, better_sign(metric), self.o.level, paired_seeds=same_model)
        judged, why = self._gate([sa, sb], family, n)
        return Comparison(family, split, int(n), metric, side_label(sa), side_label(sb), judged, why, eff)

    def _gate(self, sides: list[dict], family: str, n: int) -> tuple[bool, str]:
        why, ok = [], True
        for s in sides:
            if (family, s["learner"]) in self._learned:
                if not self.judged(family, s["learner"], s["mode"]):
                    ok = False
                    why.append(f"{s['learner']}: {self.seeds.get((family, s['learner'], s['mode']), 0)} training "
                               f"seed(s), fewer than {self.o.min_seeds}")
                    continue
                good, text = self.competence(family, s["learner"], n, s["mode"], s["context"], s["step"])
                ok &= good
                why.append(text if good else f"not competent: {text}")
        return bool(ok), "; ".join(why) or "reference learners only"


def side_label(s: dict) -> str:
    out = s["learner"]
    if s.get("mode", "iterative") == "one_shot":
        out += f" [one-shot, {s.get('context', 'all')}]"
    if s.get("step") is not None:
        out += f" step {s['step']}"
    return out


def fmt_effect(r: dict) -> str:
    """'-23% [-30%, -15%]' (relative) or '-0.012 [-0.02, -0.004]'."""
    if r.get("scale") == "relative":
        return f"{100 * r['effect']:+.1f}% [{100 * r['lo']:+.1f}%, {100 * r['hi']:+.1f}%]"
    return f"{r['effect']:+.3g} [{r['lo']:+.3g}, {r['hi']:+.3g}]"


