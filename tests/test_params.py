"""Params: the schema names the offending key; cross-references are checked; defaults merge."""

import copy
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest
import yaml

from iai.params import (
    BenchConfig,
    EvaluateConfig,
    ReferencesConfig,
    ReportConfig,
    from_dict,
    load_params,
    schema,
)
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
    (lambda r: r["evaluate"].update(cost_max_n=16384),
     "evaluate: unknown key(s): 'cost_max_n' was unexpected (cost_max_n is now bench.max_n)"),
    (lambda r: r["bench"].update(families=["nope"]), "bench.families: unknown family 'nope'"),
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


SECTIONS = {"evaluate": EvaluateConfig, "bench": BenchConfig, "references": ReferencesConfig, "report": ReportConfig}


def _section_classes(config: type) -> list[tuple[str, type]]:
    """The dataclass of a section and those of its nested sections (references.sgd, ...), by schema path."""
    nested = [(name, kind) for name, kind in typing.get_type_hints(config).items() if is_dataclass(kind)]
    return [("", config)] + nested


@pytest.mark.parametrize("section", SECTIONS)
def test_the_schema_names_the_fields_of_each_section_dataclass(section):
    """The schema validates a section and its dataclass holds it: the same keys, nested sections too."""
    for path, config in _section_classes(SECTIONS[section]):
        spec = schema()["properties"][section]
        spec = spec["properties"][path] if path else spec
        assert set(spec["properties"]) == {f.name for f in fields(config)}, f"{section}.{path}"


@pytest.mark.parametrize("section", SECTIONS)
def test_the_schema_quotes_no_default_of_a_section_dataclass(section):
    """Defaults live in the dataclasses alone: a description may point there, never repeat a value."""
    def descriptions(node):
        if isinstance(node, dict):
            yield from [node["description"]] if isinstance(node.get("description"), str) else []
            for value in node.values():
                yield from descriptions(value)
        elif isinstance(node, list):
            for value in node:
                yield from descriptions(value)

    for text in descriptions(schema()["properties"][section]):
        assert "default" not in text.replace(f"defaults in iai.params.{SECTIONS[section].__name__}", ""), text


def test_a_minimal_params_file_gets_the_dataclass_defaults():
    raw = {"seed": 0, "families": {"f": {"kind": "linear_regression"}}, "banks": {"n_tasks": 2, "n_train": 16,
           "n_valid": 4}, "references": {"learners": ["bayes"]}, "model": {}, "train": {}, "runs": [],
           "evaluate": {"sizes": [16]}}
    p = from_dict(raw)
    assert p.evaluate == EvaluateConfig(sizes=(16,))
    assert p.bench == BenchConfig() and p.report == ReportConfig()
    assert p.references == ReferencesConfig(learners=("bayes",))


def test_sections_read_as_typed_fields(raw):
    p = from_dict(raw)
    assert p.bench.families == tuple(raw["bench"]["families"]) and p.bench.max_n == raw["bench"]["max_n"]
    assert p.references.sgd.lr == raw["references"]["sgd"]["lr"] and p.references.knn.k == raw["references"]["knn"]["k"]
    assert p.report.level == raw["report"]["level"] and len(p.report.primary) == len(raw["report"]["primary"])
    assert p.raw["evaluate"] == raw["evaluate"]  # the workflow's job settings read the file as written


def test_the_nominal_rule_default_is_the_rule_as_written():
    from iai.core.learners.classical import NOMINAL_LR

    assert ReferencesConfig(learners=()).nominal_rule.lr == NOMINAL_LR


def test_a_run_knows_its_batch_and_context_size(raw):
    raw["report"].pop("primary")
    raw["runs"] = [{"family": "linreg", "name": "r", "regime": "parametric", "train": {"max_steps": 3}}]
    run = from_dict(raw).run("linreg", "r")
    assert run.batch_size == raw["train"]["batch_size"] and run.context_size == raw["train"]["batch_size"] * 3
