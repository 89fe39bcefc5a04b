"""The only place that reads params files: load, validate against the schema, merge defaults.

A params file (``params/default.yaml``) drives the whole pipeline. Its JSON schema
(``params.schema.yaml`` beside this module) is checked before anything runs; errors name the
offending key and what was expected, e.g.::

    params/default.yaml: families.linreg.noise_std: expected a number >= 0, got -1
"""

from __future__ import annotations

import copy
import math
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from iai.utils import ConfigError

# libyaml's parser where PyYAML has it: the pure-Python one took half a second of every job's start
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SCHEMA_PATH = Path(__file__).with_name("params.schema.yaml")


@cache
def schema() -> dict:
    return yaml.load(SCHEMA_PATH.read_text(), Loader=SafeLoader)


# family kinds without a known predictor f(x, theta) (iai.core.tasks.IMPLICIT_FAMILIES): the sgd and
# adam references do not apply to them, so they need no learning rate
IMPLICIT_ONLY_KINDS = ("causal_order", "mixture_generation", "image_generation")


# the references with a learning rate per family (`iai tune-lr` finds them)
TUNED_REFERENCES = ("sgd", "adam", "sgd_avg", "adam_avg")


def reference_names() -> tuple[str, ...]:
    """The reference learners a params file may name (the schema's list is the one place they are listed)."""
    return tuple(schema()["properties"]["references"]["properties"]["learners"]["items"]["enum"])


@dataclass(frozen=True)
class FamilySpec:
    """A named task family: its kind, the family's own params, and optional split overrides."""

    name: str
    kind: str
    options: dict[str, Any]
    splits: dict[str, dict[str, Any]] | None = None


@dataclass(frozen=True)
class RunSpec:
    """One learned (family, learner) pair, with the model and train sections already merged."""

    family: str
    name: str
    learner: dict[str, Any]  # regime, signal, mode and regime-specific options
    model: dict[str, Any]
    train: dict[str, Any]
    seeds: int = 1  # training seeds 0 .. seeds-1, each its own learner

    @property
    def id(self) -> str:
        return f"{self.family}/{self.name}"

    @property
    def regime(self) -> str:
        return self.learner["regime"]

    @property
    def mode(self) -> str:
        return self.learner.get("mode", "iterative")

    @property
    def batch_size(self) -> int:
        """B: the points of one mini-batch step (train.batch_size)."""
        return self.train["batch_size"]

    @property
    def context_size(self) -> int:
        """n_ctx = B x K_train (train.batch_size * train.max_steps): the most points a training rollout reads."""
        return self.batch_size * self.train["max_steps"]


class Section:
    """A params section as a frozen dataclass: its fields are the schema's keys (tests/test_params.py
    checks that they agree) and their defaults are the only ones; readers take the fields."""

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None):
        """The section from its validated mapping: nested sections built the same way, lists as tuples."""
        hints = typing.get_type_hints(cls)
        values = {}
        for key, value in (raw or {}).items():
            kind = hints[key]
            if isinstance(kind, type) and issubclass(kind, Section):
                value = kind.from_dict(value)
            elif isinstance(value, list):
                value = tuple(value)
            values[key] = value
        return cls(**values)


@dataclass(frozen=True)
class EvaluateConfig(Section):
    """``evaluate:``: the sizes every learner is evaluated at and how its rollouts read them (``iai evaluate``)."""

    sizes: tuple[int, ...]
    epochs: int = 1
    schedule: str = "epochs"
    steps: str | tuple[int, ...] = "log"
    task_chunk: int | None = None  # None: every task of a split in one chunk
    one_shot_full_max: int | None = None  # None: a one-shot learner reads all n at every size


@dataclass(frozen=True)
class BenchConfig(Section):
    """``bench:``: the cost measurements, ``iai bench`` (the table) and ``iai bench cost`` (claim 6's scaling)."""

    families: tuple[str, ...] | None = None  # None: every family that has an (iterative, one-shot) pair
    sizes: tuple[int, ...] = (64, 256, 1024)
    tasks: int = 8
    repeats: int = 3
    max_n: int = 16384
    scaling_tasks: int = 8


@dataclass(frozen=True)
class TunedReference(Section):
    """A gradient reference whose learning rate is tuned per family (``iai tune-lr``)."""

    lr: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SGDReference(TunedReference):
    momentum: float = 0.0


@dataclass(frozen=True)
class NominalRuleReference(Section):
    # the rule as written: exp of the learned parametric learners' initial log_lr
    # (iai.core.learners.classical.NOMINAL_LR; tests/test_params.py checks that they agree)
    lr: float = math.exp(-0.6931)


@dataclass(frozen=True)
class KNNReference(Section):
    k: int = 8


@dataclass(frozen=True)
class ReferencesConfig(Section):
    """``references:``: the exact and classical learners evaluated beside the learned ones, and their options."""

    learners: tuple[str, ...]
    lr_grid: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)  # the rates `iai tune-lr` tries
    sgd: SGDReference = field(default_factory=SGDReference)
    adam: TunedReference = field(default_factory=TunedReference)
    sgd_avg: TunedReference = field(default_factory=TunedReference)
    adam_avg: TunedReference = field(default_factory=TunedReference)
    nominal_rule: NominalRuleReference = field(default_factory=NominalRuleReference)
    knn: KNNReference = field(default_factory=KNNReference)


@dataclass(frozen=True)
class ReportConfig(Section):
    """``report:``: the claims' stated rules (:mod:`iai.analysis.claims`), fixed before any result;
    :class:`iai.analysis.cells.Options` is this section with ``train_context`` resolved."""

    level: float = 0.95               # two-sided; each one-sided test at (1 - level) / 2
    min_seeds: int = 3                # runs with fewer training seeds are reported, not judged
    competence_gap: float = 0.5       # fraction of the trivial-to-reference gap a judged learner closes
    history_margin: float = 0.10      # claim 4: "barely" = the relative change within +- margin
    cost_flop_factor: float = 1.5     # claim 6 (iai.analysis.cost)
    cost_slope_tolerance: float = 0.3
    # n_ctx marked on the plots and read by the claims; None: each reader derives it from the table and
    # the train section (iai.analysis.figures, iai.analysis.report)
    train_context: int | None = None
    primary: tuple[dict, ...] = ()    # the pre-registered comparisons


@dataclass(frozen=True)
class Params:
    seed: int
    device: str
    families: dict[str, FamilySpec]
    banks: dict[str, int]
    references: ReferencesConfig
    runs: list[RunSpec]
    evaluate: EvaluateConfig
    bench: BenchConfig = field(default_factory=BenchConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # the file as read (the workflow's job settings)
    path: str = "<dict>"

    def run(self, family: str, name: str) -> RunSpec:
        for r in self.runs:
            if r.family == family and r.name == name:
                return r
        known = ", ".join(r.id for r in self.runs) or "none"
        raise ConfigError(f"{self.path}: runs: no run {family}/{name}; the params define {known}")

    def family(self, name: str) -> FamilySpec:
        if name not in self.families:
            raise ConfigError(f"{self.path}: families: no family {name!r}; expected one of {sorted(self.families)}")
        return self.families[name]


# keys that moved to another section, by (section, key): the unknown-key error names where they went
MOVED = {("evaluate", f"cost_{key}"): f"bench.{key}"
         for key in ("families", "sizes", "tasks", "repeats", "max_n", "scaling_tasks")}


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _explain(error: jsonschema.ValidationError) -> str:
    """A one-line, human reading of a schema error: what was expected and what was found."""
    v, kind = error.validator, error.validator_value
    found = f"got {error.instance!r}"
    noun = "an integer" if error.schema.get("type") == "integer" else "a number"
    if v == "minimum":
        return f"expected {noun} >= {kind}, {found}"
    if v == "exclusiveMinimum":
        return f"expected {noun} > {kind}, {found}"
    if v in ("maximum", "exclusiveMaximum"):
        return f"expected {noun} {'<=' if v == 'maximum' else '<'} {kind}, {found}"
    if v == "type":
        return f"expected {'an' if str(kind)[0] in 'aeiou' else 'a'} {kind}, {found}"
    if v == "enum":
        return f"expected one of {kind}, {found}"
    if v == "required":
        return error.message
    if v == "additionalProperties":
        where = _where(error)
        unknown = f"unknown key(s): {error.message.split('(')[-1].rstrip(')')}"
        moved = [f"{key} is now {MOVED[where, key]}" for key in sorted(error.instance) if (where, key) in MOVED]
        return unknown + (f" ({'; '.join(moved)})" if moved else "")
    return error.message


def validate(raw: Any, source: str = "<dict>", learning_rates: bool = True) -> None:
    """Raise :class:`ConfigError` naming the first offending key (by path) and what was expected."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of params at the top level, got {type(raw).__name__}")
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(raw), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        e = jsonschema.exceptions.best_match(errors) if len(errors) > 1 else errors[0]
        raise ConfigError(f"{source}: {_where(e)}: {_explain(e)}")
    _cross_check(raw, source, learning_rates)


def _cross_check(raw: dict, source: str, learning_rates: bool = True) -> None:
    """What a schema cannot say: names that must refer to each other, sizes that must fit."""
    families = raw["families"]
    seen = set()
    for i, run in enumerate(raw["runs"]):
        if run["family"] not in families:
            raise ConfigError(f"{source}: runs.{i}.family: unknown family {run['family']!r}; "
                              f"expected one of {sorted(families)}")
        if run["name"] in reference_names():
            raise ConfigError(f"{source}: runs.{i}.name: {run['name']!r} is the name of a reference learner")
        key = (run["family"], run["name"])
        if key in seen:
            raise ConfigError(f"{source}: runs.{i}: the run {key[0]}/{key[1]} is defined twice")
        seen.add(key)
    for opt in TUNED_REFERENCES:
        if learning_rates and opt in raw["references"]["learners"]:
            lrs = raw["references"].get(opt, {}).get("lr", {})
            missing = sorted(name for name, spec in families.items()
                             if name not in lrs and spec["kind"] not in IMPLICIT_ONLY_KINDS)
            if missing:
                raise ConfigError(f"{source}: references.{opt}.lr: no learning rate for famil"
                                  f"{'y' if len(missing) == 1 else 'ies'} {missing} (run `iai tune-lr`)")
    for name, spec in families.items():
        if "valid" in (spec.get("splits") or {}):
            raise ConfigError(f"{source}: families.{name}.splits.valid: 'valid' names the bank's validation tasks "
                              "(banks.valid_tasks); give the split another name")
    for family in raw.get("bench", {}).get("families", []):
        if family not in families:
            raise ConfigError(f"{source}: bench.families: unknown family {family!r}; "
                              f"expected one of {sorted(families)}")
    too_big = [n for n in raw["evaluate"]["sizes"] if n > raw["banks"]["n_train"]]
    if too_big:
        raise ConfigError(f"{source}: evaluate.sizes: {too_big} exceed banks.n_train = {raw['banks']['n_train']}")
    _check_primary(raw, source)


def _check_primary(raw: dict, source: str) -> None:
    """Every pre-registered comparison names a family, split, n and learners that the params make."""
    families, sizes = raw["families"], raw["evaluate"]["sizes"]
    for i, spec in enumerate(raw.get("report", {}).get("primary", [])):
        where = f"{source}: report.primary.{i}"
        fam = spec["family"]
        if fam not in families:
            raise ConfigError(f"{where}.family: unknown family {fam!r}; expected one of {sorted(families)}")
        splits = set(families[fam].get("splits") or {"id": {}})
        if spec["split"] not in splits:
            raise ConfigError(f"{where}.split: family {fam!r} has no split {spec['split']!r}; "
                              f"expected one of {sorted(splits)}")
        if spec["n"] not in sizes:
            raise ConfigError(f"{where}.n: {spec['n']} is not one of evaluate.sizes {sizes}")
        names = {r["name"] for r in raw["runs"] if r["family"] == fam} | set(raw["references"]["learners"])
        for side in ("a", "b"):
            if spec[side]["learner"] not in names:
                raise ConfigError(f"{where}.{side}.learner: {spec[side]['learner']!r} is neither a run of family "
                                  f"{fam!r} nor a reference; expected one of {sorted(names)}")


def from_dict(raw: dict[str, Any], source: str = "<dict>", learning_rates: bool = True) -> Params:
    """Validate a params mapping and build :class:`Params` (run sections merged over the defaults).

    ``learning_rates=False`` skips the check that every family has SGD/Adam learning rates
    (``iai tune-lr`` is how they are found).
    """
    validate(raw, source, learning_rates)
    raw = copy.deepcopy(raw)
    families = {}
    for name, spec in raw["families"].items():
        spec = dict(spec)
        kind, splits = spec.pop("kind"), spec.pop("splits", None)
        families[name] = FamilySpec(name=name, kind=kind, options=spec, splits=splits)
    runs = []
    for run in raw["runs"]:
        run = dict(run)
        family, name = run.pop("family"), run.pop("name")
        model = {**raw["model"], **run.pop("model", {})}
        train = {**raw["train"], **run.pop("train", {})}
        seeds = run.pop("seeds", raw.get("seeds", 1))
        runs.append(RunSpec(family=family, name=name, learner=run, model=model, train=train, seeds=seeds))
    return Params(seed=raw["seed"], device=raw.get("device", "auto"), families=families, banks=raw["banks"],
                  references=ReferencesConfig.from_dict(raw["references"]), runs=runs,
                  evaluate=EvaluateConfig.from_dict(raw["evaluate"]), bench=BenchConfig.from_dict(raw.get("bench")),
                  report=ReportConfig.from_dict(raw.get("report")), raw=raw, path=source)


def load_params(path: str | Path, learning_rates: bool = True) -> Params:
    """Read and validate a params YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--params: file not found: {path}")
    try:
        raw = yaml.load(path.read_text(), Loader=SafeLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    return from_dict(raw, str(path), learning_rates)
