"""Draw the figures from the results table: a fixed list of PNGs (:data:`FIGURES`), always all written.

A figure whose rows are absent from the table is still written, saying "not measured in this run"
and what it needs, so that the workflow's outputs are the same for every params file.

    iai figures --results data/results/results.csv --out reports/figures [--params params/default.yaml]

The training context size marked on the error-vs-n plots (the most points a one-shot learner was
trained to read) is, per family: the batch_size of its one-shot 'capped' rows; else, with
``--params``, ``report.train_context``; else the largest train.batch_size * train.max_steps of the
family's runs (the top-level train section when it has none). Without either, no marker.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns

from iai.analysis.captions import FIGURES
from iai.analysis.plotting import (
    N_LABEL,
    REFERENCE_STYLE,
    clip_range,
    grid,
    learner_styles,
    legend,
    lines,
    log2_axis,
    log_safe,
    not_measured,
    panel_title,
    plain,
    plt,
    readable_log_ticks,
    save,
    symlog,
    vline,
    y_axis,
)
from iai.analysis.selection import (
    final_step,
    higher_is_better,
    known_learners,
    learned,
    quality,
    reference,
    tag,
    training_context,
)
from iai.core import results
from iai.core.fit import loglog_slope
from iai.core.vocab import LEARNED_REGIMES, LOG_METRICS, METRIC_LABELS

log = logging.getLogger(__name__)

SIGNAL_STYLES = {"obs": dict(color="#1f77b4", marker="o", order=(0,)),
                 "grad": dict(color="#d62728", marker="s", order=(1,)),
                 "both": dict(color="#2ca02c", marker="^", order=(2,))}


def relative(g: pd.DataFrame, ref: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """A ``plot`` column against the reference at the same (family, split, n): regression as
    value / Bayes excess risk (metric "ratio"), classification as error rate - MAP error rate
    ("excess_error"), the topological order as edge accuracy - sink search's ("edge_gap", higher is
    better), generation as MMD² - the true samples' MMD² ("excess_mmd", the floor at 0; a difference,
    since the floor itself is about 0 and may be negative); the value itself where there is no reference."""
    g = g.copy()
    metric = g.metric.iloc[0] if not g.empty else ""
    how = {("bayes", "excess_risk"): "ratio", ("map", "error_rate"): "excess_error",
           ("sink_search", "edge_accuracy"): "edge_gap", ("true_samples", "mmd"): "excess_mmd"}
    kind = how.get((ref.learner.iloc[0], metric)) if not ref.empty and ref.learner.nunique() == 1 else None
    if kind is None:
        g["plot"] = g["value"]
        return g, metric
    base = ref.set_index(["family", "split", "n_train"])["value"]
    base = base.reindex(pd.MultiIndex.from_frame(g[["family", "split", "n_train"]])).to_numpy()
    g["plot"] = g["value"] / base if kind == "ratio" else g["value"] - base
    return g[np.isfinite(g["plot"])], kind


def _what(q: pd.DataFrame) -> str:
    """What the panels' y axes show: error, or error and (for the order families) accuracy."""
    up = any(higher_is_better(m) for m in set(q.metric))
    return ("Error (↓ better) or edge accuracy (↑ better)" if up and not q.metric.map(higher_is_better).all()
            else "Edge accuracy (↑ better)" if up else "Error")


def fig_error_vs_n(df: pd.DataFrame, styles: dict, contexts: dict):
    q = tag(final_step(quality(df)))
    q = q[q.split == "id"]
    fams = sorted(q.family.unique())
    if not fams:
        return not_measured("error_vs_n.png", "no error rows in split id")
    fig, axes = grid(len(fams), 2)
    for ax, fam in zip(axes, fams):
        g = q[q.family == fam]
        lines(ax, g, "n_train", styles)
        log2_axis(ax, g.n_train)
        y_axis(ax, g.metric.iloc[0], g.value)
        vline(ax, contexts.get(fam), f"training context {contexts.get(fam)}")
        ax.set(title=panel_title(q, fam), xlabel=N_LABEL)
    legend(fig, axes, styles)
    fig.suptitle(f"{_what(q)} against dataset size (split id, final step)", weight="bold")
    return fig


def fig_error_vs_steps(df: pd.DataFrame, styles: dict, contexts: dict):
    q = tag(quality(df))
    q = q[q.split == "id"]
    it = pd.concat([learned(q), learned(q, history=True)])
    panels = sorted({(f, r) for f, r in zip(it.family, it.regime)}, key=lambda p: (p[0], LEARNED_REGIMES.index(p[1])))
    if not panels:
        return not_measured("error_vs_steps.png", "no learned iterative learner")
    fig, axes = grid(len(panels), 3, w=4.1, h=3.5)
    for ax, (fam, regime) in zip(axes, panels):
        g = it[(it.family == fam) & (it.regime == regime)]
        n = int(g.n_train.max())
        g = g[g.n_train == n]
        bsize = int(g.batch_size.iloc[0])
        ref = reference(q, fam)
        ref = ref[(ref.n_train == n) & (ref.batch_size == bsize)]
        lines(ax, pd.concat([g, ref]), "step", styles)
        one = final_step(learned(q, "one_shot"))
        one = one[(one.family == fam) & (one.regime == regime) & (one.n_train == n)]
        for _, r in one.iterrows():
            st = styles.get(r["label"], {})
            ax.axhline(r["value"], color=st.get("color"), ls=st.get("ls", "--"), lw=1.4, label=r["label"])
        log2_axis(ax, g.step)
        y_axis(ax, g.metric.iloc[0], pd.concat([g.value, ref.value, one.value]))
        k = contexts.get(fam)
        vline(ax, k / bsize if k else None, f"trained steps {k // bsize}" if k else "")
        ax.set(title=f"{fam} · {regime}  (n = {n}, B = {bsize})", xlabel="refinement steps  [log₂]")
    legend(fig, axes, styles)
    fig.suptitle(f"{_what(it)} against refinement steps at the largest n (split id)", weight="bold")
    return fig


def _dot_rows(ax, g: pd.DataFrame, labels: list[str], palette: dict) -> None:
    """Learners down the y axis, one dot (+-1 SE) per split; values past the axis drawn as arrows."""
    splits = [s for s in palette if s in set(g.split)]
    log = log_safe(g.metric.iloc[0], g.value)
    lim = clip_range(g.value, log)
    for j, split in enumerate(splits):
        s = g[g.split == split].set_index("label").reindex(labels)
        y = np.arange(len(labels)) + (j - (len(splits) - 1) / 2) * 0.8 / len(splits)
        v = s["value"].to_numpy()
        out = lim is not None and np.nan_to_num(v) > lim[1]
        ax.errorbar(np.where(out, np.nan, v), y, xerr=s["sem"].fillna(0), fmt="o", ms=4.5, color=palette[split],
                    label=split, elinewidth=1, capsize=0)
        if lim is not None and out.any():
            ax.plot(np.full(out.sum(), lim[1]), y[out], ">", color=palette[split], ms=6, clip_on=False)
    ax.set_yticks(np.arange(len(labels)), labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlabel(METRIC_LABELS.get(g.metric.iloc[0], g.metric.iloc[0]))
    if log:
        ax.set_xscale("log")
    elif g.metric.iloc[0] in LOG_METRICS:  # a log metric with a value <= 0: symmetric log
        symlog(ax, g.value, "x")
    if g.metric.iloc[0] == "mmd":  # the floor: MMD² of the true distribution is 0
        ax.axvline(0, color="0.6", lw=0.8, zorder=0)
    if lim is not None:
        ax.set_xlim(*lim)
    if log:
        readable_log_ticks(ax, "x")


def fig_id_vs_ood(df: pd.DataFrame, styles: dict, contexts: dict):
    q = tag(final_step(quality(df)))
    counts = {f: g.label.nunique() for f, g in q.groupby("family") if g.split.nunique() > 1}
    fams = sorted(counts, key=lambda f: (-counts[f], f))  # tall panels share a row
    if not fams:
        return not_measured("id_vs_ood.png", "no family with an out-of-distribution split")
    splits = sorted(q.split.unique(), key=lambda s: (s != "id", s))
    colors = [c for i, c in enumerate(sns.color_palette("Set1", 9)) if i != 5]  # no yellow: unreadable on white
    colors += sns.color_palette("Dark2", 8)
    palette = dict(zip(splits, ["black"] + [colors[i % len(colors)] for i in range(len(splits) - 1)]))
    heights = [0.3 * max(counts[f] for f in fams[i:i + 2]) + 1.3 for i in range(0, len(fams), 2)]
    fig, axes = grid(len(fams), 2, w=6.2, legend=0.6, heights=heights)
    for ax, fam in zip(axes, fams):
        g = q[q.family == fam]
        g = g[g.n_train == g.n_train.max()]
        labels = sorted(g.label.unique(), key=lambda k: styles.get(k, {}).get("order", (9, k)))
        _dot_rows(ax, g, labels, palette)
        ax.set_title(f"{panel_title(q, fam)}, n = {int(g.n_train.max())}")
    legend(fig, axes, {s: {"order": (i,)} for i, s in enumerate(splits)}, "split")
    fig.suptitle("In- vs out-of-distribution (largest n, final step)", weight="bold")
    return fig


def fig_signal_vs_dim(df: pd.DataFrame, styles: dict, contexts: dict):
    q = tag(final_step(quality(df)))
    q = q[q.split == "id"]
    p = learned(q)
    # the claim-2 learners: without the hand-written gradient term (the nominal variants are in error_vs_n)
    p = p[(p.regime == "parametric") & p.signal.isin(list(SIGNAL_STYLES)) & ~p.nominal.astype(bool)]
    kinds = sorted(p.kind.unique(), key=lambda k: (-p[p.kind == k].dim.nunique(), k))
    if not kinds:
        return not_measured("signal_vs_dim.png", "no parametric learner with signal obs, grad or both")
    dims = {k: sorted(p[p.kind == k].dim.unique()) for k in kinds}
    ncols = max(len(v) for v in dims.values())
    fig, cells = grid(len(kinds) * ncols, ncols, w=4.1, h=3.6, legend=0.6)
    for i, kind in enumerate(kinds):
        for j in range(ncols):
            ax = cells[i * ncols + j]
            if j >= len(dims[kind]):
                ax.set_visible(False)
                continue
            g = p[(p.kind == kind) & (p.dim == dims[kind][j])]
            fams = sorted(g.family.unique())
            ref = pd.concat([reference(q, f) for f in fams])
            g, metric = relative(g, ref)
            ref, _ = relative(ref, ref)
            for (sig, name), gs in g.groupby(["signal", "learner"]):
                lab = name if g[g.signal == sig].learner.nunique() > 1 else sig
                lines(ax, gs.assign(label=lab), "n_train", {lab: plain(SIGNAL_STYLES[sig])}, y="plot",
                      bands=metric == g.metric.iloc[0])
            lines(ax, ref.assign(label="exact reference"), "n_train", {"exact reference": REFERENCE_STYLE},
                  y="plot", bands=metric == g.metric.iloc[0])
            log2_axis(ax, g.n_train)
            y_axis(ax, metric, g["plot"])
            vline(ax, contexts.get(fams[0]), f"training context {contexts.get(fams[0])}")
            ax.set(title=f"{kind.replace('_', ' ')}, d = {dims[kind][j]}  ({', '.join(fams)})", xlabel=N_LABEL)
    legend(fig, cells, SIGNAL_STYLES, "signal")
    sep = " " if ncols >= 3 else "\n"  # a narrow figure wraps its title instead of cutting it off
    fig.suptitle(f"Parametric learner: observations vs gradients vs both,{sep}across input dimension d", weight="bold")
    return fig


def fig_regimes(df: pd.DataFrame, styles: dict, contexts: dict):
    q = tag(final_step(quality(df)))
    q = q[q.split == "id"]
    it = learned(q)
    # the regimes' own learners: a hand-written gradient term (the nominal variants, MAML) is in error_vs_n
    it = it[~it.nominal.astype(bool)]
    fams = sorted(f for f, g in it.groupby("family") if g.regime.nunique() > 1)
    if not fams:
        return not_measured("regimes.png", "no family with learned learners of two or more regimes")
    fig, axes = grid(len(fams), 2)
    for ax, fam in zip(axes, fams):
        ref = reference(q, fam)
        g, metric = relative(pd.concat([it[it.family == fam], ref]), ref)
        lines(ax, g, "n_train", styles, y="plot", bands=None if metric == g.metric.iloc[0] else False)
        log2_axis(ax, g.n_train)
        y_axis(ax, metric, g["plot"])
        vline(ax, contexts.get(fam), f"training context {contexts.get(fam)}")
        ax.set(title=panel_title(q, fam), xlabel=N_LABEL)
    legend(fig, axes, styles)
    fig.suptitle("Parametric (blue) vs explicit (orange) vs implicit (green), split id", weight="bold")
    return fig


def fig_cost(df: pd.DataFrame, styles: dict, contexts: dict):
    c = df[df.metric.isin(["wall_time_s", "peak_memory_mb"]) & (df.split == "id")]
    c = tag(final_step(c))
    if c.empty:
        return not_measured("cost.png", "no wall_time_s / peak_memory_mb rows")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained")
    for ax, metric in zip(axes, ["wall_time_s", "peak_memory_mb"]):
        g = c[c.metric == metric]
        ax.set(xlabel=N_LABEL, title=f"{metric.removesuffix('_s').removesuffix('_mb').replace('_', ' ')} "
                                     "of a whole rollout (split id)")
        if g.empty:
            ax.text(0.5, 0.5, "not measured in this run", ha="center", transform=ax.transAxes)
            continue
        for (fam, lab), gl in g.groupby(["family", "label"], sort=True):  # one line per family's learner
            gl = gl.sort_values("n_train")
            slope = f"{loglog_slope(gl.n_train, gl.value):.2f}".replace("-0.00", "0.00")
            name = f"{fam} · {lab}" if g.family.nunique() > 1 else lab
            ax.plot(gl.n_train, gl.value, label=f"{name}: slope {slope}", **plain(styles.get(lab, {})))
        log2_axis(ax, g.n_train)
        y_axis(ax, metric, g.value)
        ax.legend(fontsize=8, loc="upper left", title="fitted log-log slope", title_fontsize=8)
        if metric != "wall_time_s":
            continue
        ylim = ax.get_ylim()
        n0, v0 = g.n_train.min(), g[g.n_train == g.n_train.min()].value.min()
        ns = np.geomspace(n0, g.n_train.max(), 32)
        for power, text in ((1, "∝ n"), (2, "∝ n²")):
            ax.plot(ns, v0 * (ns / n0) ** power, color="0.75", lw=1, zorder=0)
            inside = ns[v0 * (ns / n0) ** power <= ylim[1]][-1]
            ax.annotate(text, (inside, v0 * (inside / n0) ** power), fontsize=8, color="0.5", xytext=(-4, 4),
                        textcoords="offset points", ha="right")
        ax.set_ylim(ylim)
    fig.suptitle("Cost: iterative vs one-shot over the same data", weight="bold")
    return fig


def read_histories(models_dir: str | Path) -> pd.DataFrame:
    """Every training history ``<models_dir>/<family>/<learner>/seed<S>.csv`` (``iai train``'s log: step,
    loss, lr, rollout_steps) as one table with ``family``, ``learner`` and ``seed`` columns (training
    times are in the report's stage table: a figure shows only what was computed)."""
    frames = []
    for path in sorted(Path(models_dir).glob("*/*/seed*.csv")):
        h = pd.read_csv(path)
        if {"step", "loss"} <= set(h.columns) and path.stem[4:].isdigit():
            frames.append(h.assign(family=path.parent.parent.name, learner=path.parent.name, seed=int(path.stem[4:])))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def fig_training(df: pd.DataFrame, styles: dict, histories: pd.DataFrame | None):
    """Training loss against iterations per family: is a learner still improving when training stops?"""
    if histories is None or histories.empty:
        return not_measured("training.png", "needs the training histories (`iai figures --models data/models`)")
    label = {r.learner: r.label for r in tag(df).drop_duplicates("learner").itertuples()}
    fams = sorted(histories.family.unique())
    fig, axes = grid(len(fams), ncols=3, w=max(4.6, 11.0 / min(3, len(fams))), h=3.3)  # page width at least
    for ax, fam in zip(axes, fams):
        h = histories[histories.family == fam]
        for learner, g in h.groupby("learner", sort=True):
            lab = label.get(learner, learner)
            style = {k: v for k, v in plain(styles.get(lab, {})).items() if k not in ("marker", "ms")}
            mean = g.groupby("step").loss.mean()  # over training seeds
            ax.plot(mean.index, mean.to_numpy(), label=lab, **style)
        if (h.loss > 0).all():
            ax.set_yscale("log")
        ax.set(xlabel="training iteration", ylabel="loss on fresh tasks' valid points", title=fam)
    legend(fig, axes, styles)
    fig.suptitle("Meta-training: loss against iterations (logged means over training seeds; fresh tasks every "
                 "iteration)", weight="bold")
    return fig


DRAW = {"error_vs_n.png": fig_error_vs_n, "error_vs_steps.png": fig_error_vs_steps, "id_vs_ood.png": fig_id_vs_ood,
        "signal_vs_dim.png": fig_signal_vs_dim, "regimes.png": fig_regimes, "cost.png": fig_cost}


def draw_all(df: pd.DataFrame, out: str | Path, train_context: dict | int | None = None,
             histories: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write every figure of :data:`FIGURES` under ``out`` (``histories``: :func:`read_histories`, for
    the training curves); returns name -> path."""
    out = Path(out)
    default = train_context if isinstance(train_context, dict) else {}
    contexts = {f: training_context(df, f, default.get(f, train_context if isinstance(train_context, int) else None))
                for f in df.family.unique()}
    styles = learner_styles(df)
    paths = {}
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        for name in FIGURES:
            fig = fig_training(df, styles, histories) if name == "training.png" else DRAW[name](df, styles, contexts)
            save(fig, out / name)
            paths[name] = out / name
            log.info("wrote %s", out / name)
    return paths


def params_context(params) -> dict[str, int]:
    """Training context per family from params (see the module docstring)."""
    if params.report.train_context:
        return {f: params.report.train_context for f in params.families}
    top = params.raw["train"]
    out = {f: top.get("batch_size", 1) * top.get("max_steps", 1) for f in params.families}
    for f in params.families:
        runs = [r for r in params.runs if r.family == f]
        if runs:
            out[f] = max(r.context_size for r in runs)
    return out



def cli_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="data/results/results.csv", help="results table (CSV)")
    p.add_argument("--out", default="reports/figures", help="folder for the PNGs (default: reports/figures)")
    p.add_argument("--params", help="params YAML: checks learner names, gives the training context size")
    p.add_argument("--models", help="checkpoint folder with the training histories (<family>/<learner>.csv)")


def cli_main(args: argparse.Namespace) -> None:
    params = None
    if args.params:
        from iai.params import load_params

        params = load_params(args.params)
    df = results.read(args.results, known_learners(params) if params else None)
    histories = read_histories(args.models) if args.models else None
    paths = draw_all(df, args.out, params_context(params) if params else None, histories)
    print(f"wrote {len(paths)} figures to {args.out}")
