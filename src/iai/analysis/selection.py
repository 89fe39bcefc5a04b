"""Choosing rows of the results table, shared by the claims, the figures and the report.

Learners are selected by the table's columns (regime, signal, state, history, mode, context),
never by parsing their free-text names. The one exception is the reference learners, whose names
are a fixed vocabulary of the params schema (``bayes``, ``map``, ...): the Bayes curve is the
exact learner named ``bayes``, or ``map`` where a family has no closed-form posterior.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd

from iai.core.results import QUALITY_METRICS

REGIME_ORDER = ("exact", "classical", "parametric", "explicit", "implicit")  # tables and legends

LEARNED = ("parametric", "implicit", "explicit")
PRIMARY = ("excess_risk", "error_rate", "mse", "nll")  # the first one a family reports is its primary
REFERENCE = ("bayes", "map")  # the curve every learner is held against, in order of preference
GROUP = ["family", "split", "learner", "mode", "context", "n_train", "metric"]


def primary_metric(df: pd.DataFrame, family: str) -> str | None:
    """excess_risk (regression) or error_rate (classification): the first of PRIMARY reported."""
    present = set(df.loc[df.family == family, "metric"])
    return next((m for m in PRIMARY if m in present), None)


def quality(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of each family's primary metric (cost rows dropped), with a fresh index."""
    q = df[df.metric.isin(QUALITY_METRICS)]
    keep = {f: primary_metric(q, f) for f in q.family.unique()}
    return q[q.metric == q.family.map(keep)].reset_index(drop=True)


def final_step(df: pd.DataFrame) -> pd.DataFrame:
    """Each (family, split, learner, mode, context, n, metric) at its last scored step."""
    if df.empty:
        return df
    df = df.reset_index(drop=True)
    return df.loc[df.groupby(GROUP, sort=False)["step"].idxmax()]


def learned(df: pd.DataFrame, mode: str = "iterative", history: bool = False) -> pd.DataFrame:
    """Learned learners of one mode, Markovian (history 0) or with a history window (history > 0)."""
    sel = df.regime.isin(LEARNED) & (df["mode"] == mode)
    return df[sel & ((df.history > 0) if history else (df.history == 0))]


def reference(df: pd.DataFrame, family: str) -> pd.DataFrame:
    """The family's reference curve rows (Bayes, else MAP); empty if it has neither."""
    ex = df[(df.family == family) & (df.regime == "exact")]
    for name in REFERENCE:
        if (ex.learner == name).any():
            return ex[ex.learner == name]
    return ex.iloc[0:0]


def label(row) -> str:
    """How a learner is named in figures and tables (one-shot rows carry their context)."""
    return row["learner"] + (f" [one-shot, {row['context']}]" if row["mode"] == "one_shot" else "")


def labels(df: pd.DataFrame) -> pd.Series:
    """:func:`label` for every row at once."""
    one_shot = " [one-shot, " + df["context"].astype(str) + "]"
    return df["learner"].astype(str) + one_shot.where(df["mode"] == "one_shot", "")


def tag(df: pd.DataFrame, text: Callable[[pd.DataFrame], pd.Series] = labels) -> pd.DataFrame:
    """A copy with a ``label`` column computed from the whole frame by ``text``."""
    df = df.copy()
    df["label"] = text(df).astype(str) if not df.empty else pd.Series(dtype=str)
    return df


def best_of(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """The lowest-value row of each group (the best learner of a variant)."""
    if df.empty:
        return df
    df = df.reset_index(drop=True)
    return df.loc[df.groupby(by, sort=False)["value"].idxmin()]


def training_context(df: pd.DataFrame, family: str, default: int | None = None) -> int | None:
    """Points a one-shot learner was trained to read: the batch_size of the family's one-shot
    'capped' rows (the context it was fed), else ``default`` (from the params)."""
    capped = df[(df.family == family) & (df["mode"] == "one_shot") & (df.context == "capped")]
    return int(capped.batch_size.max()) if not capped.empty else default


def loglog_slope(n, y) -> float:
    """Least-squares slope of log y against log n (NaN with fewer than two points)."""
    n, y = np.asarray(n, float), np.asarray(y, float)
    ok = (n > 0) & (y > 0)
    return float(np.polyfit(np.log(n[ok]), np.log(y[ok]), 1)[0]) if ok.sum() >= 2 else math.nan


def known_learners(params) -> set[str]:
    """Every learner name a params file (:class:`iai.params.Params`) can put in the table."""
    return set(params.references["learners"]) | {r.name for r in params.runs}
