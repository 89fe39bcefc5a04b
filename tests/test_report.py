"""The report: renders, embeds and links every figure it names, shows computed verdicts and what was
run; metrics.json is deterministic; bad inputs fail with one clear message."""

import base64
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from helpers.fake_results import fake_params, write_tables
from iai import cli
from iai.analysis import report
from iai.analysis.claims import CLAIMS, evaluate_claims
from iai.analysis.figures import FIGURES
from iai.analysis.results_doc import render
from iai.utils import ConfigError

VOID = {"meta", "img", "br", "hr", "link", "input"}


class Page(HTMLParser):
    """Collects images, links and text, and checks that tags are balanced."""

    def __init__(self):
        super().__init__()
        self.imgs, self.hrefs, self.text, self.stack, self.errors = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.imgs.append(attrs)
        if tag == "a":
            self.hrefs.append(attrs.get("href"))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, _results_table, fake_figures):
    """results.csv (and per_task.parquet), params.yaml, two stage summaries and figures/."""
    root = tmp_path_factory.mktemp("report")
    write_tables(_results_table.copy(), root / "results.csv")
    shutil.copytree(fake_figures, root / "figures")
    fake_params(root / "params.yaml")
    (root / "train.json").write_text(json.dumps({"stage": "train", "family": "linreg", "learner": "parametric_obs",
                                                 "duration_s": 181.25, "device": "cpu", "config": {"width": 64}}))
    (root / "evaluate.json").write_text(json.dumps([{"stage": "evaluate", "duration_s": 3.5, "device": "cuda",
                                                     "device_name": "NVIDIA H100"}]))
    return root


def flat_keys(d: dict, prefix: str = "") -> list[str]:
    """The metric names DVC prints (nested keys joined with dots)."""
    return [key for k, v in d.items()
            for key in (flat_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"])]


def build(root: Path, out: Path, **kw) -> dict:
    args = dict(results_path=root / "results.csv", figures_dir=root / "figures", out=out / "index.html",
                metrics_path=out / "metrics.json", params_path=root / "params.yaml",
                stage_info=[root / "train.json", root / "evaluate.json"])
    return report.build(**{**args, **kw})


def test_report_renders_and_links_every_figure(inputs, tmp_path, per_task_table):
    claims = build(inputs, tmp_path)["claims"]
    page = Page()
    page.feed((tmp_path / "index.html").read_text())
    assert page.errors == [] and page.stack == []
    figs = inputs / "figures"
    shown = {img["alt"]: img["src"] for img in page.imgs}
    assert sorted(shown) == sorted(FIGURES)
    for name, src in shown.items():
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]) == (figs / name).read_bytes()
    linked = {(tmp_path / h).resolve() for h in page.hrefs if h and not h.startswith("#")}
    assert {(figs / n).resolve() for n in FIGURES} <= linked
    text = " ".join(page.text)
    for caption in FIGURES.values():
        assert caption in text
    for c in claims:
        assert f"Claim {c['claim']}: {c['title']}" in text and c["test"] in text
    assert [c["verdict"] for c in claims] == [c["verdict"]
                                              for c in evaluate_claims(per_task_table, {"train_context": 128})]
    assert "181.2" in text and "NVIDIA H100" in text and "params.yaml" in text and "git commit" in text


def test_metrics_are_deterministic_and_hold_the_headlines(inputs, tmp_path):
    for run in ("a", "b"):
        build(inputs, tmp_path / run, results_doc=tmp_path / run / "results.md")
    data = (tmp_path / "a" / "metrics.json").read_bytes()
    assert data == (tmp_path / "b" / "metrics.json").read_bytes()
    m = json.loads(data)
    # the results page is the metrics rendered: what `iai report-doc` renders again from the files
    page = (tmp_path / "a" / "results.md").read_text()
    assert page == (tmp_path / "b" / "results.md").read_text()
    assert page == render(m, json.loads((tmp_path / "a" / "comparisons.json").read_text())["rules"])
    assert sorted(m["claims"]) == sorted(f"claim_{c}" for c in CLAIMS) and list(m["verdicts"]) == list(CLAIMS)
    detail = json.loads((tmp_path / "a" / "comparisons.json").read_text())
    assert len(detail["rules"]["hash"]) == 16 and "primary" in detail["rules"] and "competence_gap" in detail["rules"]
    assert m["rules_hash"] == detail["rules"]["hash"]
    assert [r["claim"] for r in detail["sensitivity"]] == list(CLAIMS) and "level 0.99" in detail["sensitivity"][0]
    # the headline is short: verdicts, the primary comparisons' effects, final numbers (dvc metrics diff)
    for name, claim in m["claims"].items():
        assert m["verdicts"][name.removeprefix("claim_")] == detail["claims"][name]["verdict"]
        assert len(claim.get("primary", {})) == len(detail["claims"][name].get("primary", {}))  # one key each
        for entry in claim.get("primary", {}).values():
            assert set(entry) <= {"effect", "lo", "hi", "p_holm", "shows"}
    assert all(len(key) <= 80 for key in flat_keys(m)), max(flat_keys(m), key=len)
    assert (tmp_path / "a" / "claims.md").read_text().startswith("# The paper's claims, judged")
    lin = m["families"]["linreg"]
    assert lin["metric"] == "excess_risk" and lin["n"] == 256 and lin["split"] == "id"
    assert lin["learners"]["bayes"]["ratio_to_bayes"] == 1.0
    assert lin["learners"]["parametric_obs"]["ratio_to_bayes"] > 1.0
    assert m["families"]["logreg"]["metric"] == "error_rate"
    assert "ratio_to_bayes" not in m["families"]["logreg"]["learners"]["map"]


def test_with_a_run_page_the_report_is_the_same_whatever_the_durations_and_commit(inputs, tmp_path):
    """Durations (from the summaries' *.timing.json) and the commit go to the run page alone, so that
    DVC records the same report on every run of a commit (and one commit's report does not name it)."""
    pages = {}
    for run, seconds in (("a", 181.25), ("b", 9.75)):
        root = tmp_path / f"in_{run}"
        root.mkdir()
        summary = root / "train.json"
        summary.write_text(json.dumps({"stage": "train", "family": "linreg", "device": "cpu"}))
        summary.with_name("train.timing.json").write_text(json.dumps({"duration_s": seconds}))
        out = tmp_path / run
        build(inputs, out, stage_info=[summary], run_page=out / "run.html")
        pages[run] = (out / "index.html").read_text(), (out / "run.html").read_text()
    index, run_page = pages["a"]
    assert index == pages["b"][0]
    assert "git commit" not in index and "181.2" not in index and 'href="run.html"' in index
    assert "git commit" in run_page and "181.2" in run_page and "9.75" in pages["b"][1]
    for html in (index, run_page):
        page = Page()
        page.feed(html)
        assert page.errors == [] and page.stack == []


def test_without_learned_rows_every_claim_is_inconclusive(inputs, tmp_path, results_table):
    df = results_table
    write_tables(df[df.regime.isin(["exact", "classical"])], tmp_path / "refs.csv")
    build(inputs, tmp_path, results_path=tmp_path / "refs.csv", stage_info=[], params_path=None)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert set(m["verdicts"].values()) == {"inconclusive"}
    text = (tmp_path / "index.html").read_text()
    assert text.count("v-inconclusive") >= 12 and "No stage summaries were given" in text


@pytest.mark.parametrize("damage, message", [
    (lambda df: df.drop(columns=["regime"]), "missing column(s) ['regime']"),
    (lambda df: df.assign(learner=df.learner.where(df.learner != "knn", "mystery")), "unknown learner(s) ['mystery']"),
    (lambda df: df.assign(family=df.family.where(df.family != "logreg", "nope")), "unknown family(ies) ['nope']"),
])
def test_a_bad_table_gives_one_clear_message(inputs, tmp_path, capsys, damage, message, results_table):
    damage(results_table).to_csv(tmp_path / "bad.csv", index=False)
    code = cli.main(["report", "--results", str(tmp_path / "bad.csv"), "--figures", str(inputs / "figures"),
                     "--params", str(inputs / "params.yaml"), "--out", str(tmp_path / "index.html"),
                     "--metrics", str(tmp_path / "metrics.json")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "index.html").exists() and not (tmp_path / "metrics.json").exists()


def test_missing_figure_and_bad_stage_info_are_named(inputs, tmp_path):
    with pytest.raises(ConfigError, match="error_vs_n.png: figure not found"):
        build(inputs, tmp_path, figures_dir=tmp_path)
    (tmp_path / "s.json").write_text("{not json")
    with pytest.raises(ConfigError, match="s.json: not valid JSON"):
        build(inputs, tmp_path, stage_info=[tmp_path / "s.json"])
    stages = report.read_stage_info([inputs / "train.json", inputs / "evaluate.json"])
    assert list(stages.stage) == ["train", "evaluate"] and "config" not in stages


def test_cli_prints_the_verdicts(inputs, tmp_path, capsys):
    code = cli.main(["report", "--results", str(inputs / "results.csv"), "--figures", str(inputs / "figures"),
                     "--out", str(tmp_path / "r" / "index.html"), "--metrics", str(tmp_path / "r" / "m.json"),
                     "--results-doc", str(tmp_path / "docs" / "results.md")])
    assert code == 0 and "1b: inconclusive" in capsys.readouterr().out  # no params: no primary comparisons
    assert (tmp_path / "r" / "index.html").is_file() and (tmp_path / "r" / "m.json").is_file()
    page = (tmp_path / "docs" / "results.md").read_text()
    assert page.startswith("# Results") and "No primary comparison was pre-registered for this claim." in page
