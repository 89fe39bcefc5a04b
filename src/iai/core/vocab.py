"""The project's vocabulary, in one place: regimes, modes, contexts and metrics.

The results table's categorical columns take their values from here (:mod:`iai.core.results`
validates against them), the learner configs check their options against them, and selection,
claims and plotting read a metric's direction, axis scale and label from :data:`METRICS`. Adding a
metric is one :class:`Metric` line here plus the code that computes it.
"""

from __future__ import annotations

from dataclasses import dataclass

LEARNED_REGIMES = ("parametric", "implicit", "explicit")  # what a trained learner's state is
REFERENCE_REGIMES = ("classical", "exact")  # hand-written learners, nothing trained
REGIMES = LEARNED_REGIMES + REFERENCE_REGIMES
REGIME_ORDER = ("exact", "classical", "parametric", "explicit", "implicit")  # tables and legends
MODES = ("iterative", "one_shot")
CONTEXTS = ("all", "capped")  # a one-shot learner read every point, or a subset of its training context


@dataclass(frozen=True)
class Metric:
    """A column of the results table's ``metric`` (or one derived from it for a figure).

    ``kind``: ``quality`` (per task, what comparisons pair on), ``cost`` (a measurement of ``iai
    bench``) or ``derived`` (computed in the analysis, e.g. a ratio to a reference). ``log``: the
    axis is log-scaled (only metrics that are > 0; never unbiased MMD², never a difference).
    ``fraction``: in [0, 1].
    """

    name: str
    label: str
    kind: str = "quality"
    higher_is_better: bool = False
    log: bool = False
    fraction: bool = False


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("mse", "MSE  [y units², log]", log=True),
    Metric("excess_risk", "excess risk E(ŷ − f)²  [y units², log]", log=True),
    Metric("error_rate", "error rate  [fraction of valid points]", fraction=True),
    Metric("nll", "NLL  [nats per point]"),
    Metric("edge_accuracy", "edge accuracy  [fraction of ordered pairs, ↑ better]", higher_is_better=True,
           fraction=True),
    Metric("valid_order", "valid orders  [fraction of tasks, ↑ better]", higher_is_better=True, fraction=True),
    Metric("mmd", "MMD² (unbiased, can be < 0)  [↓ better]"),
    Metric("sample_nll", "sample NLL  [nats per sample]"),
    Metric("cfm_loss", "flow-matching loss  [↓ better]"),
    Metric("wall_time_s", "wall time  [s, log]", kind="cost", log=True),
    Metric("peak_memory_mb", "peak memory  [MB, log]", kind="cost", log=True),
    Metric("ratio", "excess risk ÷ Bayes excess risk  [ratio, log]", kind="derived", log=True),
    Metric("excess_error", "error rate − MAP's error rate  [fraction]", kind="derived"),
    Metric("edge_gap", "edge accuracy − sink search's  [fraction, ↑ better]", kind="derived", higher_is_better=True),
    Metric("excess_mmd", "MMD² − true samples' MMD²  [↓ better]", kind="derived"),
)}

QUALITY_METRICS = tuple(m.name for m in METRICS.values() if m.kind == "quality")
COST_METRICS = tuple(m.name for m in METRICS.values() if m.kind == "cost")
TABLE_METRICS = QUALITY_METRICS + COST_METRICS  # the values the results table's metric column may take
HIGHER_IS_BETTER = tuple(m.name for m in METRICS.values() if m.higher_is_better and m.kind != "derived")
LOG_METRICS = frozenset(m.name for m in METRICS.values() if m.log)
FRACTION_METRICS = frozenset(m.name for m in METRICS.values() if m.fraction)
METRIC_LABELS = {m.name: m.label for m in METRICS.values()}
