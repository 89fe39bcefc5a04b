"""docs/results.md: every number on it is one of the metrics' (or of the rules they were judged under), a
changed number changes it, and the committed page is the committed metrics rendered, so it cannot drift."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from iai import cli
from iai.analysis.cells import Options
from iai.analysis.claims import CLAIMS, precondition, stated_test
from iai.analysis.cost import cost_precondition, cost_rule
from iai.analysis.results_doc import render

REPO = Path(__file__).resolve().parents[1]
# a number standing alone (not inside a name such as linreg_d32 or a hash), with its sign and percent
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?%?(?!\w)")

SMALL = {  # every shape the page renders: intervals or none, a difference metric, a cost regime, two families
    "verdicts": {"1": "reproduced", "4": "inconclusive", "6": "contradicted"},
    "claims": {
        "claim_1": {"primary": {
            "lin/id/n64/a vs b/excess_risk": {"effect": -0.25, "lo": -0.412, "hi": -0.0884, "p_holm": 0.0123,
                                              "shows": "claimed"},
            "scm/ood/n256/a step 32 vs a step 4/edge_accuracy": {"effect": 0.0312, "lo": -0.011, "hi": 0.0734,
                                                                  "p_holm": 0.5, "shows": "neither"}}},
        "claim_4": {"primary": {"lin/id/n64/a_h2 vs a/mse": {"effect": 0.0371, "p_holm": 0.77}}},
        "claim_6": {"regimes": {"parametric": {"verdict": "contradicted", "flop_ratio_per_K": 0.412,
                                               "time_ratio_R": 7.25, "slope": 0.613, "slope_lo": 0.551,
                                               "slope_hi": 0.675}}},
    },
    "families": {
        "lin": {"metric": "excess_risk", "n": 64, "split": "id", "better": "lower",
                "learners": {"a": {"value": 0.1, "sem": 0.01, "ratio_to_bayes": 3.5}, "bayes": {"value": 0.02}}},
        "scm": {"metric": "edge_accuracy", "n": 256, "split": "id", "better": "higher",
                "learners": {"a": {"value": 0.9, "sem": 0.02, "minus_sink_search": -0.05}}},
    },
    "rules_hash": "0123abcd4567ef89",
}
RULES = {"level": 0.9, "min_seeds": 2, "competence_gap": 0.4, "history_margin": 0.2, "cost_flop_factor": 2.0,
         "cost_slope_tolerance": 0.25, "hash": "0123abcd4567ef89",
         "primary": [{"claim": "4", "family": "lin", "split": "id", "n": 64, "a": {"learner": "a_h2"},
                      "b": {"learner": "a"}, "test": "equivalence"}]}


def committed() -> tuple[dict, dict]:
    metrics = json.loads((REPO / "reports/metrics.json").read_text())
    return metrics, json.loads((REPO / "reports/comparisons.json").read_text())["rules"]


def stated_sentences(rules: dict) -> list[str]:
    """The claims' tests and preconditions under ``rules``: the claims modules' own sentences."""
    o = Options.from_dict(rules)
    return [stated_test(c, o) for c in CLAIMS if c != "6"] + [precondition(o), cost_rule(o), cost_precondition(o)]


def leaves(tree, path=()):
    """(path, value) of every scalar of a JSON tree."""
    if isinstance(tree, dict):
        return [leaf for k, v in tree.items() for leaf in leaves(v, (*path, k))]
    if isinstance(tree, list):
        return [leaf for i, v in enumerate(tree) for leaf in leaves(v, (*path, i))]
    return [(path, tree)]


def formatted(value) -> set[str]:
    """Every way the page writes a number (cells.fmt_effect, .3g, the level as a percent)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return set()
    if isinstance(value, int):
        return {str(value)}
    return {f"{value:.3g}", f"{value:+.3g}", f"{100 * value:+.1f}%", f"{value:.0%}"}


def unexplained_numbers(doc: str, metrics: dict, rules: dict) -> list[str]:
    """The numbers of ``doc`` that are neither a value of the metrics or rules (as the page formats them),
    nor in their keys (claim names, n), nor in the claims' stated sentences."""
    for sentence in stated_sentences(rules):
        doc = doc.replace(sentence, "")
    allowed = set()
    for path, value in leaves(metrics) + leaves({k: v for k, v in rules.items() if k != "primary"}):
        allowed |= formatted(value) | {d for key in path if isinstance(key, str) for d in re.findall(r"\d+", key)}
    return [n for n in NUMBER.findall(doc) if n not in allowed]


@pytest.mark.parametrize("which", ["small", "committed"])
def test_every_number_on_the_page_is_one_of_the_metrics(which):
    metrics, rules = (SMALL, RULES) if which == "small" else committed()
    doc = render(metrics, rules)
    assert len(NUMBER.findall(doc)) > 20  # the check below has numbers to look at
    assert unexplained_numbers(doc, metrics, rules) == []
    assert unexplained_numbers(doc + "\n| 0.4242 |", metrics, rules) == ["0.4242"]  # a typed number is caught
    for claim in (c for c in CLAIMS if c in metrics["verdicts"] and c != "6"):  # the report's own test, stated
        assert stated_test(claim, Options.from_dict(rules)) in doc


def test_the_page_shows_each_shape_as_the_report_does():
    doc = render(SMALL, RULES)
    assert "| lin / id / 64 | a vs b | excess_risk | -25.0% [-41.2%, -8.8%] | 0.0123 | claimed |" in doc
    assert "| scm / ood / 256 | a step 32 vs a step 4 | edge_accuracy | +0.0312 [-0.011, +0.0734] | 0.5 |" in doc
    assert "| lin / id / 64 | a_h2 vs a | mse | +3.7%, no interval | 0.77 | not judged |" in doc
    assert "| parametric | contradicted | 0.412 | 7.25 | 0.613 [0.551, 0.675] |" in doc
    assert "two one-sided tests against +-20%" in doc and "at 90%" in doc
    assert "| scm | edge_accuracy | higher | id | 256 | `a` |" in doc
    assert "[reports/index.html](../reports/index.html)" in doc and "[reports/claims.md](../reports/claims.md)" in doc
    assert render(json.loads(json.dumps(SMALL, sort_keys=True)), RULES) == doc  # key order does not matter


@pytest.mark.parametrize("path", [p for p, v in leaves(SMALL) if isinstance(v, (int, float))
                                  and not isinstance(v, bool) and "learners" not in p])
def test_changing_a_number_changes_the_page(path):
    changed = copy.deepcopy(SMALL)
    node = changed
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = node[path[-1]] * 2 + 1
    assert render(changed, RULES) != render(SMALL, RULES)


def test_the_committed_page_is_the_committed_metrics_rendered():
    """docs/results.md edited by hand, or left behind by new metrics, fails here."""
    page = (REPO / "docs/results.md").read_text()
    assert page == render(*committed()), "docs/results.md: regenerate it with " \
        "`iai report-doc --metrics reports/metrics.json --out docs/results.md`"
    assert str(REPO) not in page  # no path of the machine


def test_report_doc_without_its_comparisons_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "metrics.json").write_text((REPO / "reports/metrics.json").read_text())
    code = cli.main(["report-doc", "--metrics", str(tmp_path / "metrics.json"), "--out", str(tmp_path / "r.md")])
    err = capsys.readouterr().err
    assert code == 2 and "comparisons.json: cannot read" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.md").exists()
