"""Params: the schema names the offending key; cross-references are checked; defaults merge."""

import copy
from pathlib import Path

import pytest
import yaml

from iai.params import from_dict, load_params
from iai.utils import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def raw():
    return yaml.safe_load((ROOT / "params" / "default.yaml").read_text())


def test_shipped_params_files_are_valid():
    for path in sorted((ROOT / "params").glob("*.yaml")):
        load_params(path)


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["families"]["linreg"].update(noise_std=-1),
     "families.linreg.noise_std: expected a number >= 0, got -1"),
    (lambda r: r["families"]["linreg"].update(dim=0), "families.linreg.dim: expected an integer >= 1, got 0"),
    (lambda r: r["families"]["linreg"].update(kind="quadratic"), "families.linreg.kind: expected one of"),
    (lambda r: r["banks"].update(n_tasks="many"), "banks.n_tasks: expected an integer, got 'many'"),
    (lambda r: r["train"].update(lr=0), "train.lr: expected a number > 0, got 0"),
    (lambda r: r.update(colour="blue"), "unknown key(s)"),
    (lambda r: r["evaluate"].update(sizes=[16, 99999]), "evaluate.sizes: [99999] exceed banks.n_train"),
    (lambda r: r["references"]["sgd"]["lr"].pop("linreg"), "references.sgd.lr: no learning rate for family ['linreg']"),
    (lambda r: r["runs"].append({"family": "nope", "name": "x", "regime": "implicit"}), "runs."),
    (lambda r: r["runs"].append({"family": "linreg", "name": "bayes", "regime": "implicit"}), "name of a reference"),
    (lambda r: r["report"]["primary"][0].update(family="nope"), "report.primary.0.family: unknown family 'nope'"),
    (lambda r: r["report"]["primary"][0].update(split="ood_x"),
     "report.primary.0.split: family 'linreg' has no split 'ood_x'"),
    (lambda r: r["report"]["primary"][0].update(n=100), "report.primary.0.n: 100 is not one of evaluate.sizes"),
    (lambda r: r["report"]["primary"][0]["b"].update(learner="nobody"),
     "report.primary.0.b.learner: 'nobody' is neither"),
    (lambda r: r["report"]["primary"][0].update(test="maybe"), "report.primary.0.test: expected one of"),
    (lambda r: r["families"]["linreg"]["splits"].update(valid={}), "families.linreg.splits.valid: 'valid' names"),
])
def test_bad_params_name_the_key(raw, edit, message):
    edit(raw)
    with pytest.raises(ConfigError) as err:
        from_dict(raw, "p.yaml")
    assert str(err.value).startswith("p.yaml: ") and message in str(err.value)


def test_duplicate_runs_are_rejected(raw):
    run = {"family": "linreg", "name": "twice", "regime": "implicit"}
    raw["runs"] = [run, dict(run)]
    with pytest.raises(ConfigError, match="twice is defined twice"):
        from_dict(raw)


def test_run_sections_merge_over_defaults(raw):
    raw = copy.deepcopy(raw)
    raw["report"].pop("primary")
    raw["runs"] = [{"family": "linreg", "name": "r", "regime": "parametric", "train": {"lr": 0.5}}]
    p = from_dict(raw)
    run = p.run("linreg", "r")
    assert run.train["lr"] == 0.5 and run.train["batch_size"] == raw["train"]["batch_size"]
    assert run.model == raw["model"] and run.regime == "parametric" and run.mode == "iterative"
    with pytest.raises(ConfigError, match="no run linreg/s"):
        p.run("linreg", "s")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="--params: file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_params(bad)
