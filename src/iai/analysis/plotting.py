"""Drawing helpers for :mod:`iai.analysis.figures`: learner styles, axes with units, legends, grids, saving.

Matplotlib runs headless (Agg) with its config folder in the temp dir unless ``MPLCONFIGDIR`` is set.
PNGs are saved without a software stamp, so the same table gives the same bytes.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

os.environ.setdefault("MPLCONFIGDIR", os.path.join(tempfile.gettempdir(), "iai-matplotlib"))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from iai.analysis.selection import REFERENCE, tag  # noqa: E402
from iai.core.vocab import FRACTION_METRICS, LOG_METRICS, METRIC_LABELS, REGIME_ORDER  # noqa: E402
from iai.utils import atomic_path  # noqa: E402

REGIME_CMAP = {"exact": "Greys", "classical": "Purples", "parametric": "Blues", "explicit": "Oranges",
               "implicit": "Greens"}
MARKERS = "osD^vPX*<>"
N_LABEL = "dataset size n  [points, log₂]"
REFERENCE_STYLE = dict(color="black", marker="", ls=(0, (5, 2)), lw=2.4, zorder=4)
MAX_BANDS = 6  # standard-error bands are drawn only in panels with at most this many lines
DPI = 100


def learner_styles(df: pd.DataFrame) -> dict[str, dict]:
    """One fixed style per learner label for every figure: a shade of its regime's color, a marker,
    a line style for its mode (iterative solid, one-shot capped dashed, one-shot all dotted)."""
    rows = tag(df.drop_duplicates(["learner", "mode", "context"]))
    styles = {}
    for regime in REGIME_ORDER:
        g = rows[rows.regime == regime].sort_values(["learner", "mode", "context"])
        top = 0.7 if regime == "exact" else 0.9  # keep references grey: black is the Bayes curve's
        colors = plt.get_cmap(REGIME_CMAP[regime])(np.linspace(0.45, top, max(len(g), 1)))
        for i, (_, r) in enumerate(g.iterrows()):
            ls = "-" if r["mode"] == "iterative" else "--" if r["context"] == "capped" else ":"
            styles[r["label"]] = dict(color=colors[i], marker=MARKERS[i % len(MARKERS)], ls=ls, lw=1.6, ms=5,
                                      order=(REGIME_ORDER.index(regime), r["label"]))
            if r["learner"] in REFERENCE and r["mode"] == "iterative":  # bayes, map, sink_search, true_samples
                styles[r["label"]].update(REFERENCE_STYLE)
    return styles


def plain(style: dict) -> dict:
    return {k: v for k, v in style.items() if k != "order"}


def lines(ax, data: pd.DataFrame, x: str, styles: dict, y: str = "value", bands: bool | None = None) -> None:
    """One line per label; +-1 SE bands where the panel has few lines (``bands=None``)."""
    groups = list(data.groupby("label", sort=True))
    bands = len(groups) <= MAX_BANDS if bands is None else bands
    for lab, g in groups:
        g = g.sort_values(x)
        st = plain(styles.get(lab, {}))
        if len(g) == 1 and not st.get("marker"):
            st["marker"] = "o"  # a lone point needs a marker to be seen
        ax.plot(g[x], g[y], label=lab, **st)
        scale = np.ones(len(g)) if y == "value" else np.nan_to_num((g[y] / g["value"]).to_numpy(), posinf=0, neginf=0)
        sem = g["sem"].fillna(0).to_numpy() * np.abs(scale)
        if bands and (sem > 0).any():
            ax.fill_between(g[x], g[y] - sem, g[y] + sem, color=st.get("color"), alpha=0.1, lw=0)


def log2_axis(ax, values, axis: str = "x") -> None:
    """A log2 axis ticked at the values present, labelled as plain numbers."""
    getattr(ax, f"set_{axis}scale")("log", base=2)
    ticks = sorted({int(v) for v in values})
    if len(ticks) > 8:
        ticks = ticks[::math.ceil(len(ticks) / 8)]
    getattr(ax, f"set_{axis}ticks")(ticks)
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def clip_range(values, log: bool) -> tuple[float, float] | None:
    """Axis limits that keep a diverging learner (e.g. least squares at n = d) from squashing the rest."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)] if log else v[np.isfinite(v)]
    if not len(v) or not log or v.max() <= 20 * np.quantile(v, 0.9):
        return None
    return v.min() / 1.5, 20 * np.quantile(v, 0.9)


def readable_log_ticks(ax, axis: str = "y") -> None:
    """On a log axis spanning less than ~1.5 decades, tick at 1, 1.2, 1.5, 2, 3, 5, 7 x 10^k as plain numbers."""
    lo, hi = getattr(ax, f"get_{axis}lim")()
    if not (0 < lo < hi) or hi / lo > 30:
        return
    cands = [m * 10.0**k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
             for m in (1, 1.2, 1.5, 2, 3, 5, 7)]
    ticks = [t for t in cands if lo <= t <= hi]
    ticks = ticks[::math.ceil(len(ticks) / 7)] if ticks else ticks
    getattr(ax, f"set_{axis}ticks")(ticks)
    getattr(ax, f"set_{axis}lim")(lo, hi)
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    target.set_minor_formatter(NullFormatter())


def log_safe(metric: str, values) -> bool:
    """A log axis for ``metric``: only for a metric of :data:`LOG_METRICS` whose values are all > 0."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return metric in LOG_METRICS and bool((v > 0).all())


def symlog(ax, values, axis: str = "y") -> None:
    """A symmetric-log axis (linear around 0) for a log metric with values <= 0."""
    v = np.abs(np.asarray(values, float))
    v = v[np.isfinite(v) & (v > 0)]
    getattr(ax, f"set_{axis}scale")("symlog", linthresh=float(np.quantile(v, 0.1)) if len(v) else 1.0)


def y_axis(ax, metric: str, values) -> None:
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if metric in LOG_METRICS and not log_safe(metric, v):
        symlog(ax, v)
    elif metric in LOG_METRICS:
        ax.set_yscale("log")
        lim = clip_range(values, True)
        if lim:
            ax.set_ylim(*lim)
        readable_log_ticks(ax)
    elif metric == "error_rate":
        ax.set_ylim(0, min(1.0, 1.1 * v.max()) if len(v) else 1.0)
    elif metric in FRACTION_METRICS and len(v):  # accuracies: the data's range, kept inside [0, 1]
        pad = max(0.02, 0.08 * (v.max() - v.min()))
        ax.set_ylim(max(0.0, v.min() - pad), min(1.0, v.max() + pad))
    elif metric in ("mmd", "excess_mmd") and len(v):  # linear; 0 (the floor) in view
        ax.axhline(0, color="0.6", lw=0.8, zorder=0)


def vline(ax, x: float | None, text: str) -> None:
    if x:
        ax.axvline(x, color="0.45", ls=":", lw=1.5)
        ax.annotate(text, (x, 1), xycoords=("data", "axes fraction"), xytext=(3, -3), textcoords="offset points",
                    ha="left", va="top", fontsize=8, color="0.3", rotation=90)


def legend(fig, axes, styles: dict, title: str = "learner", ncols: int = 4) -> None:
    """One legend for the whole figure, below the panels, in regime order."""
    entries = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(lab, h)
    order = sorted(entries, key=lambda k: styles.get(k, {}).get("order", (9, k)))
    if order:
        fig.legend([entries[k] for k in order], order, loc="outside lower center", fontsize=9, title=title,
                   title_fontsize=9, frameon=False, ncols=min(ncols, len(order)))


def grid(n: int, ncols: int, w: float = 5.6, h: float = 3.9, legend: float = 1.6, heights=None):
    """A constrained-layout grid of n panels (extra cells hidden), ``legend`` inches below for a legend."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    heights = heights or [h] * nrows
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, sum(heights) + legend), squeeze=False,
                             layout="constrained", gridspec_kw={"height_ratios": heights})
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def panel_title(df: pd.DataFrame, family: str) -> str:
    r = df[df.family == family].iloc[0]
    return f"{family}  ({r['kind'].replace('_', ' ')}, d = {r['dim']})"


def not_measured(name: str, reason: str):
    """A placeholder image that says the figure's data is absent from this run's table."""
    fig, ax = plt.subplots(figsize=(8, 2.6), layout="constrained")
    ax.axis("off")
    ax.text(0.5, 0.62, name.removesuffix(".png").replace("_", " "), ha="center", fontsize=15, weight="bold")
    ax.text(0.5, 0.32, f"not measured in this run\n({reason})", ha="center", va="center", fontsize=11, color="0.35")
    return fig


def save(fig, path: str | Path) -> None:
    """PNG without a software stamp: same table, same bytes."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
