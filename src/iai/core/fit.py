"""Least-squares fits shared by the stages and the analysis (no dependency on the rest of the package).

:func:`loglog_slope` is the one log-log slope of the code: ``iai bench cost``'s descriptive slopes of
wall time against n (:func:`iai.stages.bench.cost.claim_cost_scaling`) and the fitted slopes in the
legend of the cost figure (:mod:`iai.analysis.figures`).
"""

from __future__ import annotations

import math
import statistics


def loglog_slope(n, y) -> float:
    """Least-squares slope of log y against log n over the points where both are > 0 (None, NaN, zero
    and negative values are left out); NaN with fewer than two such points or a single distinct n."""
    pts = [(math.log(a), math.log(b)) for a, b in zip(n, y) if a is not None and b is not None and a > 0 and b > 0]
    if len(pts) < 2:
        return math.nan
    mx = statistics.fmean(x for x, _ in pts)
    my = statistics.fmean(v for _, v in pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return float(sum((x - mx) * (v - my) for x, v in pts) / sxx) if sxx else math.nan
