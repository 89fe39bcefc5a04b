"""Figures: the fixed list is always written, from a small table, byte-stable, with units; absent
data says "not measured"; bad tables fail with one clear message."""

from pathlib import Path

import matplotlib.image
import matplotlib.text
import pandas as pd
import pytest
import yaml

from helpers.fake_results import fake_params
from iai import cli
from iai.analysis import figures
from iai.analysis.plotting import learner_styles
from iai.analysis.selection import training_context
from iai.core import results
from iai.params import from_dict

PNG = b"\x89PNG\r\n\x1a\n"


def texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


@pytest.fixture
def small_table(results_table):
    """linreg only: Bayes, two learned learners, the cost rows."""
    df = results_table
    keep = df.learner.isin(["bayes", "parametric_obs", "implicit_logits", "parametric_obs_1shot"])
    return df[(df.family == "linreg") & keep & df.split.isin(["id", "ood_prior"])]


def test_every_figure_is_written_from_the_fake_table(fake_figures):
    out = Path(fake_figures)
    assert sorted(p.name for p in out.glob("*.png")) == sorted(figures.FIGURES)
    for name in figures.FIGURES:
        data = (out / name).read_bytes()
        assert data.startswith(PNG)
        h, w = matplotlib.image.imread(out / name).shape[:2]
        assert w >= 1000 and h >= 400, name  # readable: drawn at 100 dpi, about page width


def test_figures_are_byte_stable(tmp_path, small_table):
    df = small_table
    styles = learner_styles(df)
    for name in ("error_vs_steps.png", "cost.png"):
        for copy in ("a", "b"):
            figures.save(figures.DRAW[name](df, styles, {"linreg": 128}), tmp_path / copy / name)
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_absent_rows_say_not_measured(tmp_path, results_table):
    df = results_table
    df = df[(df.family == "linreg") & (df.regime == "exact")]  # references only
    styles = learner_styles(df)
    for name, draw in figures.DRAW.items():
        fig = draw(df, styles, {})
        said = any("not measured in this run" in t for t in texts(fig))
        assert said == (name not in ("error_vs_n.png", "id_vs_ood.png")), name
        figures.plt.close(fig)


def test_axes_carry_units_log_scales_and_the_context_marker(results_table):
    df = results_table
    styles = learner_styles(df)
    fig = figures.fig_error_vs_n(df, styles, {"linreg": 128})
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == df.family.nunique()
    for ax in axes:
        assert "[points, log₂]" in ax.get_xlabel() and ax.get_xscale() == "log"
        assert "[" in ax.get_ylabel()
    assert any("training context 128" in t for t in texts(fig))
    figures.plt.close(fig)
    fig = figures.fig_cost(df, styles, {})
    for ax in fig.axes:
        assert ax.get_xscale() == ax.get_yscale() == "log"
        assert any("slope" in t.get_text() for t in ax.get_legend().get_texts())
    assert any("slope 2.00" in t for t in texts(fig))  # the fake one-shot time grows as n^2
    figures.plt.close(fig)


def test_training_context_comes_from_capped_rows_then_params(results_table):
    df = results_table
    assert training_context(df, "linreg") == 128  # batch_size of the one-shot 'capped' rows
    assert training_context(df, "linreg_d2") is None and training_context(df, "linreg_d2", 64) == 64
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params" / "default.yaml").read_text())
    raw["families"] = {name: raw["families"][name] for name in ("linreg", "logreg")}
    raw["runs"] = [{"family": "logreg", "name": "p", "regime": "parametric", "train": {"batch_size": 32}}]
    raw["report"].pop("primary")
    ctx = figures.params_context(from_dict(raw))
    assert ctx == {"linreg": 16 * 8, "logreg": 32 * 8}
    raw["report"] = {"train_context": 100}
    assert figures.params_context(from_dict(raw)) == {"linreg": 100, "logreg": 100}


@pytest.mark.parametrize("damage, message", [
    (lambda df: df.drop(columns=["sem"]), "missing column(s) ['sem']"),
    (lambda df: df.assign(learner=df.learner.where(df.learner != "knn", "mystery")), "unknown learner(s) ['mystery']"),
    (lambda df: df.assign(regime=df.regime.where(df.regime != "exact", "magic")),
     "column 'regime' has unknown value(s)"),
])
def test_a_bad_table_gives_one_clear_message(tmp_path, capsys, damage, message, small_table):
    bad = damage(small_table.assign(learner=lambda d: d.learner.where(d.learner != "implicit_logits", "knn")))
    bad.to_csv(tmp_path / "bad.csv", index=False)
    fake_params(tmp_path / "p.yaml")
    code = cli.main(["figures", "--results", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "figs"),
                     "--params", str(tmp_path / "p.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "figs").exists()


def test_cli_writes_the_fixed_list_even_when_rows_are_absent(tmp_path, capsys, small_table):
    df = small_table
    results.write(df[df.regime == "exact"], tmp_path / "r.csv")
    assert cli.main(["figures", "--results", str(tmp_path / "r.csv"), "--out", str(tmp_path / "figs")]) == 0
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(figures.FIGURES)


def test_training_curves_come_from_the_histories_and_say_not_measured_without(tmp_path, results_table):
    from helpers.fake_results import fake_histories

    df = results_table
    styles = learner_styles(df)
    fig = figures.fig_training(df, styles, fake_histories())
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "training iteration"
    assert {line.get_label() for line in ax.get_lines()} == {"parametric_obs", "implicit_logits"}
    figures.plt.close(fig)
    fig = figures.fig_training(df, styles, None)
    assert any("not measured in this run" in t for t in texts(fig))
    figures.plt.close(fig)
    # read from the folder layout `iai train` writes: <models>/<family>/<learner>/seed<S>.csv
    for (fam, learner), g in fake_histories().groupby(["family", "learner"]):
        for seed in (0, 1):
            (tmp_path / fam / learner).mkdir(parents=True, exist_ok=True)
            g.drop(columns=["family", "learner"]).to_csv(tmp_path / fam / learner / f"seed{seed}.csv", index=False)
    (tmp_path / "linreg" / "parametric_obs" / "notes.csv").write_text("a,b\n1,2\n")  # not a training log: ignored
    got = figures.read_histories(tmp_path)
    assert set(got.learner) == {"parametric_obs", "implicit_logits"} and len(got) == 2 * len(fake_histories())
    assert set(got.seed) == {0, 1}


def test_the_regimes_figure_leaves_out_learners_with_the_hand_written_term(results_table):
    """MAML and the nominal variants carry a hand-written gradient step: error_vs_n shows them, the
    regime comparison does not (as claim 2's figure leaves them out)."""
    df = results_table
    df = df[df.family == "linreg"]
    maml = df[df.learner == "parametric_grad"].assign(learner="maml_fake", nominal=True)
    df = pd.concat([df, maml], ignore_index=True)
    styles = learner_styles(df)
    shown = {name: texts(figures.DRAW[name](df, styles, {"linreg": 128})) for name in ("regimes.png", "error_vs_n.png")}
    assert any("maml_fake" in t for t in shown["error_vs_n.png"])
    assert not any("maml_fake" in t for t in shown["regimes.png"])
    assert any("parametric_grad" in t for t in shown["regimes.png"])
    figures.plt.close("all")
