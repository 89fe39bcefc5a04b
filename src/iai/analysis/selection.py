"""Choosing rows of the results table, shared by the claims, the figures and the report.

Learners are selected by the table's columns (regime, signal, state, history, mode, context),
never by parsing their free-text names. The one exception is the reference learners, whose names
are a fixed vocabulary of the params schema (``bayes``, ``map``, ...): the Bayes curve is the
exact learner named ``bayes``, or ``map`` where a family has no closed-form posterior.

Each family is judged on one *primary metric* (:func:`primary_metric`): ``excess_risk``
(regression), ``error_rate`` (classification), ``edge_accuracy`` (topological order, *higher* is
better) or ``mmd`` (generation; an unbiased MMD² estimate, so it can be slightly negative). Every
"better", "best" and "improvement" here goes through :func:`better_sign` (the direction of
:data:`iai.core.vocab.HIGHER_IS_BETTER`), never through a bare ``<`` or ``min``.

The reference a family is held against (:func:`reference`): ``bayes``, else ``map`` (prediction
families); ``sink_search`` for the topological order (regression-based sink search: consistent for
linear SCMs with equal noise variances, the strongest of the three classical order references;
``var_sort`` only works on unstandardized data and ``random_order`` is chance); ``true_samples``
for generation (fresh samples of the true distribution: the MMD floor).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from iai.core.vocab import HIGHER_IS_BETTER, LEARNED_REGIMES, QUALITY_METRICS
from iai.params import IMPLICIT_ONLY_KINDS

PRIMARY = ("excess_risk", "error_rate", "edge_accuracy", "mmd", "mse", "nll")  # the first one reported is primary
PREDICTION = ("excess_risk", "error_rate", "mse", "nll")  # primary metrics of the regression/classification families
REFERENCE = ("bayes", "map", "sink_search", "true_samples")  # the curve learners are held against, by preference
GROUP = ["family", "split", "learner", "mode", "context", "n_train", "metric"]


def primary_metric(df: pd.DataFrame, family: str) -> str | None:
    """excess_risk (regression), error_rate (classification), edge_accuracy (order) or mmd
    (generation): the first of PRIMARY reported."""
    present = set(df.loc[df.family == family, "metric"].unique())
    return next((m for m in PRIMARY if m in present), None)


def higher_is_better(metric: str) -> bool:
    return metric in HIGHER_IS_BETTER


def better_sign(metric) -> float | np.ndarray:
    """+1 where lower is better, -1 where higher is better (a metric name or an array of names):
    ``better_sign(m) * value`` is a loss, lower is better for every metric."""
    if isinstance(metric, str):
        return -1.0 if metric in HIGHER_IS_BETTER else 1.0
    return np.where(pd.Series(metric).isin(HIGHER_IS_BETTER).to_numpy(), -1.0, 1.0)


def loss(df: pd.DataFrame) -> pd.Series:
    """Each row's value turned lower-is-better (higher-is-better metrics negated)."""
    return df["value"] * better_sign(df["metric"])


def prediction(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the prediction families (regression, classification) only: without the implicit-only
    families (topological order, generation), which claims 2 to 6 do not concern. A family is dropped
    when its kind is one of :data:`iai.params.IMPLICIT_ONLY_KINDS` or its primary metric is not one of
    :data:`PREDICTION` (a family with cost rows only is kept unless its kind is implicit-only)."""
    if df.empty:
        return df
    q = df[df.metric.isin(QUALITY_METRICS)]
    drop = {f for f in q.family.unique() if primary_metric(q, f) not in PREDICTION}
    return df[~df.family.isin(drop) & ~df.kind.isin(IMPLICIT_ONLY_KINDS)]


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
    sel = df.regime.isin(LEARNED_REGIMES) & (df["mode"] == mode)
    return df[sel & ((df.history > 0) if history else (df.history == 0))]


def reference(df: pd.DataFrame, family: str) -> pd.DataFrame:
    """The family's reference curve rows (Bayes, else MAP, else sink search for the order, else the
    true samples for generation); empty if it has none."""
    ex = df[(df.family == family) & df.regime.isin(["exact", "classical"]) & (df["mode"] == "iterative")]
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
    """The best row of each group (the best learner of a variant): the lowest value, or the highest
    for a higher-is-better metric."""
    if df.empty:
        return df
    df = df.reset_index(drop=True)
    return df.loc[loss(df).groupby([df[c] for c in by], sort=False).idxmin()]


def training_context(df: pd.DataFrame, family: str, default: int | None = None) -> int | None:
    """Points a one-shot learner was trained to read: the batch_size of the family's one-shot
    'capped' rows (the context it was fed), else ``default`` (from the params)."""
    capped = df[(df.family == family) & (df["mode"] == "one_shot") & (df.context == "capped")]
    return int(capped.batch_size.max()) if not capped.empty else default


def known_learners(params) -> set[str]:
    """Every learner name a params file (:class:`iai.params.Params`) can put in the table."""
    return set(params.references.learners) | {r.name for r in params.runs}
