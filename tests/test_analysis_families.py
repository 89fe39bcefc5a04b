"""The analysis layer on the implicit-only families (topological order: edge accuracy, higher is
better; generation: MMD², lower is better and possibly below 0) and the digits classification
family: the direction is respected everywhere, the figures draw, no log axis meets a value <= 0,
the report lists them, and claims 2 to 6 are not disturbed by their rows."""

import json
from pathlib import Path

import matplotlib.text
import numpy as np
import yaml

from helpers.fake_results import IMPLICIT_FAMILIES, implicit_only_table, with_implicit_only, write_tables
from iai import cli
from iai.analysis import claims, figures, report, selection
from iai.analysis.plotting import learner_styles, y_axis
from iai.core import results

BASE = dict(family="scm", kind="causal_order", dim=5, split="id", regime="implicit", learner="implicit",
            signal="obs", state="logits", history=0, mode="iterative", context="all", batch_size=16, n_train=64,
            step=4, n_seen=64, metric="edge_accuracy", value=0.8, sem=0.01, n_tasks=64, seed=0)


def table(rows):
    return results.to_frame([{**BASE, **r} for r in rows])


def curve(values, **kw):
    """An iterative learner at n = 64 (B = 16): ``values`` at steps 1, 2, 4."""
    return [{**kw, "step": s, "n_seen": 16 * s, "value": v} for s, v in zip((1, 2, 4), values)]


def axes_of(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


# ---------------------------------------------------------------------------- selection


def test_primary_metric_and_direction_per_family():
    df = implicit_only_table()
    assert selection.primary_metric(df, "scm") == "edge_accuracy"
    assert selection.primary_metric(df, "mog") == "mmd"
    digits = table([dict(family="digits", kind="image_classification", metric=m, regime="exact", learner="map")
                    for m in ("nll", "error_rate")])
    assert selection.primary_metric(digits, "digits") == "error_rate"
    assert set(selection.quality(df).metric) == {"edge_accuracy", "mmd"}
    assert selection.higher_is_better("edge_accuracy") and not selection.higher_is_better("mmd")
    assert list(selection.better_sign(np.array(["edge_accuracy", "mmd", "error_rate"]))) == [-1, 1, 1]


def test_reference_is_sink_search_for_the_order_and_true_samples_for_generation():
    df = implicit_only_table()
    assert set(selection.reference(df, "scm").learner) == {"sink_search"}
    assert set(selection.reference(df, "mog").learner) == {"true_samples"}


def test_best_of_takes_the_highest_edge_accuracy_and_the_lowest_mmd():
    rows = [dict(learner="a", value=0.9), dict(learner="b", value=0.6),
            dict(family="mog", kind="mixture_generation", metric="mmd", learner="a", value=0.05),
            dict(family="mog", kind="mixture_generation", metric="mmd", learner="b", value=-0.001)]
    best = selection.best_of(table(rows), ["family"]).set_index("family")
    assert best.loc["scm", "learner"] == "a" and best.loc["mog", "learner"] == "b"


def test_prediction_drops_only_the_implicit_only_families(results_table):
    df = with_implicit_only(results_table)
    kept = set(selection.prediction(df).family)
    assert kept == set(results_table.family) and not kept & set(IMPLICIT_FAMILIES)


# ---------------------------------------------------------------------------- claims


# ---------------------------------------------------------------------------- figures


def _log_axes_hold_positive_data(fig):
    for ax in axes_of(fig):
        for axis in ("x", "y"):
            if getattr(ax, f"get_{axis}scale")() != "log":
                continue
            for line in ax.get_lines():
                if line.get_transform() == (ax.get_yaxis_transform() if axis == "x" else ax.get_xaxis_transform()):
                    continue  # axhline / axvline: this coordinate is a fraction of the axes
                data = np.asarray(line.get_xdata() if axis == "x" else line.get_ydata(), float)
                data = data[np.isfinite(data)]
                assert (data > 0).all(), (ax.get_title(), axis)


def test_figures_draw_from_the_new_families_alone(tmp_path):
    df = implicit_only_table()
    assert (df[df.metric == "mmd"].value <= 0).any()
    styles = learner_styles(df)
    assert styles["sink_search"]["ls"] == styles["true_samples"]["ls"] == figures.REFERENCE_STYLE["ls"]
    for name, draw in figures.DRAW.items():
        fig = draw(df, styles, {"scm": 64, "mog": 64})
        _log_axes_hold_positive_data(fig)
        said = any("not measured in this run" in t.get_text() for t in fig.findobj(matplotlib.text.Text))
        assert said == (name in ("signal_vs_dim.png", "regimes.png")), name  # no parametric; one regime
        figures.save(fig, tmp_path / name)
    paths = figures.draw_all(df, tmp_path / "all")
    assert sorted(paths) == sorted(figures.FIGURES)


def test_new_family_panels_show_their_metric_on_a_linear_axis():
    df = implicit_only_table()
    styles = learner_styles(df)
    fig = figures.fig_error_vs_n(df, styles, {})
    axes = {ax.get_title().split()[0]: ax for ax in axes_of(fig)}
    assert set(axes) == set(IMPLICIT_FAMILIES)
    assert "edge accuracy" in axes["scm"].get_ylabel() and "↑ better" in axes["scm"].get_ylabel()
    assert "MMD" in axes["mog"].get_ylabel() and axes["mog"].get_yscale() == "linear"
    assert axes["mog"].get_ylim()[0] < 0  # the MMD below 0 is shown, not dropped
    assert {line.get_label() for line in axes["scm"].get_lines()} >= {"random_order", "var_sort", "sink_search",
                                                                      "implicit"}
    assert "true_samples" in {line.get_label() for line in axes["mog"].get_lines()}
    figures.plt.close(fig)
    fig = figures.fig_error_vs_steps(df, styles, {})
    assert {ax.get_title().split()[0] for ax in axes_of(fig)} == set(IMPLICIT_FAMILIES)
    figures.plt.close(fig)
    fig = figures.fig_id_vs_ood(df, styles, {})
    assert all(ax.get_xscale() == "linear" for ax in axes_of(fig))
    figures.plt.close(fig)


def test_no_log_axis_for_values_at_or_below_zero():
    fig, ax = figures.plt.subplots()
    y_axis(ax, "ratio", [0.5, -0.01, 2.0])  # a log metric meeting a value <= 0: symmetric log
    assert ax.get_yscale() == "symlog"
    y_axis(ax, "excess_risk", [0.5, 2.0])
    assert ax.get_yscale() == "log"
    figures.plt.close(fig)
    fig, ax = figures.plt.subplots()
    y_axis(ax, "mmd", [0.1, -0.002])
    assert ax.get_yscale() == "linear"
    figures.plt.close(fig)


def test_relative_is_a_difference_to_the_reference_for_the_new_families():
    df = figures.final_step(selection.quality(implicit_only_table()))
    for fam, kind in (("scm", "edge_gap"), ("mog", "excess_mmd")):
        g, metric = figures.relative(df[df.family == fam], selection.reference(df, fam))
        assert metric == kind
        ref = g[g.learner == selection.reference(df, fam).learner.iloc[0]]
        assert np.allclose(ref["plot"], 0)


def test_mixed_table_figures_hold_every_family(tmp_path, results_table):
    df = with_implicit_only(results_table)
    styles = learner_styles(df)
    fig = figures.fig_error_vs_n(df, styles, {})
    assert len(axes_of(fig)) == df.family.nunique()
    _log_axes_hold_positive_data(fig)
    figures.plt.close(fig)
    fig = figures.fig_id_vs_ood(df, styles, {})
    titles = " ".join(ax.get_title() for ax in axes_of(fig))
    assert all(f in titles for f in IMPLICIT_FAMILIES)
    figures.plt.close(fig)


# ---------------------------------------------------------------------------- report


def test_report_lists_the_new_families_and_respects_the_direction(tmp_path, results_table):
    df = with_implicit_only(results_table)
    write_tables(df, tmp_path / "results.csv")
    figures.draw_all(df, tmp_path / "figs")
    out = report.build(tmp_path / "results.csv", tmp_path / "figs", tmp_path / "index.html", tmp_path / "metrics.json")
    text = (tmp_path / "index.html").read_text()
    for fam, (kind, _, _) in IMPLICIT_FAMILIES.items():
        assert f"<td>{fam}</td><td>{kind}</td>" in text  # the "What was run" table
    assert "scm: edge_accuracy (higher is better) at n = 256 (reference: sink_search)" in text
    assert "mog: mmd (lower is better) at n = 256 (reference: true_samples)" in text
    assert "linreg: excess_risk (lower is better)" in text and "÷ reference (id)" in text and "− reference (id)" in text
    m = json.loads((tmp_path / "metrics.json").read_text())
    scm, mog = m["families"]["scm"], m["families"]["mog"]
    assert scm["metric"] == "edge_accuracy" and scm["better"] == "higher" and mog["better"] == "lower"
    assert m["families"]["linreg"]["better"] == "lower"
    assert scm["learners"]["sink_search"]["minus_sink_search"] == 0.0
    assert scm["learners"]["random_order"]["minus_sink_search"] < 0
    assert mog["learners"]["implicit"]["minus_true_samples"] > 0 and mog["learners"]["true_samples"]["value"] < 0
    assert "ratio_to_bayes" in m["families"]["linreg"]["learners"]["bayes"]
    tasks = results.read_tasks(tmp_path / "per_task.parquet")
    assert [c["verdict"] for c in out["claims"]] == [c["verdict"] for c in claims.evaluate_claims(tasks)]


def test_final_table_bolds_the_highest_edge_accuracy():
    t = report.final_table(implicit_only_table())
    scm = t[(t.family == "scm") & (t.split == "id")]
    assert scm.ratio.isna().all() and np.isclose(scm.set_index("label").difference["sink_search"], 0)
    from iai.analysis.report_html import final_numbers

    html = final_numbers({"final": t})
    best = scm.loc[scm.value.idxmax()]
    assert f"<b>{best['value']:.4g} ± {best['sem']:.2g}</b>" in html
    worst = scm.loc[scm.value.idxmin()]
    assert f"<b>{worst['value']:.4g} ±" not in html


# ---------------------------------------------------------------------------- tune-lr


def test_tune_lr_skips_the_implicit_only_families(tmp_path, capsys):
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params" / "default.yaml").read_text())
    raw["families"] = {"scm": {"kind": "causal_order", "dim": 5}, "mog": {"kind": "mixture_generation", "dim": 2}}
    raw["references"] = {"learners": ["random_order", "var_sort", "sink_search", "true_samples"]}
    raw["runs"] = []
    raw["report"].pop("primary", None)
    raw.pop("bench")  # its families are the recipe's own
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    code = cli.main(["tune-lr", "--params", str(tmp_path / "p.yaml"), "--tasks", "2"])
    out = capsys.readouterr().out
    assert code == 0, capsys.readouterr().err
    assert "# scm: skipped (causal_order" in out and "# mog: skipped (mixture_generation" in out
