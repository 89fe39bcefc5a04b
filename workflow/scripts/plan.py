"""The pipeline's plan: which jobs a params file asks for, where their files go, what each reads.

The Snakefile (rules, inputs, ``params:``) and ``dvc_yaml.py`` (the stages of ``dvc.yaml``) both
build on this module, so the two tools see the same jobs, the same paths, the same params keys
and the same code dependencies. Nothing here runs a stage: it only lists.

Up-to-dateness is decided by content in both tools:

- params: each job's Snakemake ``params:`` holds the values of exactly the params keys that its
  DVC stage declares (:func:`keys`), so a change to one key reruns the same jobs in both;
- a learned run's own entry of ``runs:`` (a list, so DVC would address it by position) is written
  to ``data/runs/<family>/<learner>.json`` with the model and train defaults merged in; training
  takes that file as input, and both tools compare it by content;
- code: every job takes as input the source files of the ``iai`` modules its command imports
  (:func:`code_files`, the import closure), so editing a module reruns the jobs that run it.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from iai.params import reference_names

DEFAULT_PARAMS = "params/default.yaml"
BANKS, RUN_SPECS, MODELS = "data/banks", "data/runs", "data/models"
EVAL, RESULTS = "data/results/eval", "data/results/results.csv"
FIGURES, REPORT, METRICS = "reports/figures", "reports/index.html", "reports/metrics.json"
LOGS = "logs"
REFERENCES = reference_names()  # the params schema lists them once
COST = "cost"  # data/results/eval/<family>/cost.csv holds a family's cost rows: no run may be called so
REPO = Path(__file__).resolve().parents[2]
SRC = Path("src/iai")  # relative to the repository root (the working directory of both tools)

# the iai module each rule's command runs
STAGE_MODULES = {"generate": "generate", "train": "train", "evaluate": "evaluate", "bench": "bench",
                 "merge": "results", "figures": "figures", "report": "report"}


# ---------------------------------------------------------------------------- paths


def bank(family: str) -> list[str]:
    return [f"{BANKS}/{family}.pt", f"{BANKS}/{family}.json"]


def run_spec(family: str, learner: str) -> str:
    return f"{RUN_SPECS}/{family}/{learner}.json"


def model(family: str, learner: str) -> list[str]:
    """Checkpoint, training log, summary. ``<learner>.resume.pt`` exists only while training."""
    return [f"{MODELS}/{family}/{learner}.{ext}" for ext in ("pt", "csv", "json")]


def evaluation(family: str, learner: str) -> list[str]:
    return [f"{EVAL}/{family}/{learner}.csv", f"{EVAL}/{family}/{learner}.json"]


def cost(family: str) -> list[str]:
    return [f"{EVAL}/{family}/{COST}.csv", f"{EVAL}/{family}/{COST}.json"]


def figures(names: list[str]) -> list[str]:
    return [f"{FIGURES}/{name}" for name in names]


# ---------------------------------------------------------------------------- code dependencies


def _module_file(root: Path, parts: list[str]) -> Path | None:
    path = root.joinpath(*parts)
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def _imports(root: Path, file: Path) -> set[Path]:
    """Files of the package modules that ``file`` imports (relative or ``iai.``), anywhere in it."""
    here = list(file.relative_to(root).parent.parts)
    found = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        targets: list[list[str]] = []
        if isinstance(node, ast.Import):
            targets = [n.name.split(".")[1:] for n in node.names if n.name.split(".")[0] == "iai"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
            elif (node.module or "").split(".")[0] == "iai":
                base = []
            else:
                continue
            mod = base + ([p for p in node.module.split(".") if p] if node.module else [])
            if not node.level:
                mod = mod[1:]  # drop the leading "iai"
            targets = [mod] + [mod + [n.name] for n in node.names]  # `from . import results` names modules
        for parts in targets:
            for i in range(len(parts) + 1):  # importing a.b runs a/__init__.py too
                f = _module_file(root, parts[:i])
                if f is not None:
                    found.add(f)
    return found


@cache
def code_files(module: str, root: Path = REPO / SRC) -> tuple[str, ...]:
    """Source files (relative to the repository) that ``iai.<module>`` imports, transitively.

    Includes the package's ``__init__.py`` and ``cli.py`` (every command starts there) and the
    params schema (every command validates its params).
    """
    start = [root / "__init__.py", root / "cli.py", _module_file(root, module.split("."))]
    seen, todo = set(), [f for f in start if f is not None]
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo += sorted(_imports(root, f) - seen)
    files = sorted(str(SRC / f.relative_to(root)) for f in seen)
    if "params.py" in {f.name for f in seen}:
        files.append(str(SRC / "params.schema.yaml"))
    return tuple(files)


# ---------------------------------------------------------------------------- params keys


def lookup(raw: dict, key: str) -> Any:
    node = raw
    for part in key.split("."):
        node = node[part]
    return node


def _present(raw: dict, keys: list[str]) -> list[str]:
    out = []
    for key in keys:
        try:
            lookup(raw, key)
        except KeyError:
            continue
        out.append(key)
    return out


def keys(raw: dict, stage: str, family: str | None = None, learner: str | None = None) -> list[str]:
    """The params keys a job reads: its Snakemake ``params:`` and its DVC stage's ``params:``.

    Only keys present in the file are listed (a missing optional key takes the code's default);
    ``["*"]`` means the whole file. Training reads its run's entry through
    ``data/runs/<family>/<learner>.json`` instead.
    """
    ev = list(raw.get("evaluate", {}))
    if stage == "generate":
        wanted = ["seed", "banks", f"families.{family}"]
    elif stage == "runs":
        wanted = ["seed", "families", "model", "train", "runs"]
    elif stage == "evaluate" and learner in REFERENCES:
        wanted = ["seed", f"families.{family}", "train.batch_size", f"references.{learner}"]
        wanted += [f"evaluate.{k}" for k in ev if not k.startswith("cost_")]
    elif stage == "evaluate":
        wanted = ["seed", f"families.{family}"] + [f"evaluate.{k}" for k in ev if not k.startswith("cost_")]
    elif stage == "bench":
        wanted = ["seed", f"families.{family}"] + [f"evaluate.{k}" for k in ev if k.startswith("cost_")]
    elif stage == "figures":
        wanted = ["references.learners", "train.batch_size", "train.max_steps", "runs", "report.train_context"]
    elif stage == "report":
        return ["*"]  # the report shows the whole recipe: every key, present or added later
    else:
        wanted = []
    return _present(raw, wanted)


def canonical(obj: Any) -> str:
    """JSON with sorted keys: the same settings give the same text, whatever the order in the file."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def settings(raw: dict, *args: str | None) -> str:
    """The values of :func:`keys` as canonical JSON: what a job's Snakemake ``params:`` records."""
    return canonical({k: raw if k == "*" else lookup(raw, k) for k in keys(raw, *args)})


def resolved_run(params, family: str, learner: str) -> dict:
    """A run's entry with the model and train defaults merged in: all that ``iai train`` reads of it."""
    run = params.run(family, learner)
    return {"seed": params.seed, "family": params.raw["families"][family], "name": learner,
            "learner": run.learner, "model": run.model, "train": run.train}


# ---------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Plan:
    """Every job a params file asks for."""

    params_path: str
    params: Any  # iai.params.Params
    families: list[str]
    runs: list[tuple[str, str]]  # (family, learner) trained
    evaluations: list[tuple[str, str]]  # (family, learner) evaluated: references, then runs
    bench: dict[str, list[str]]  # family -> the runs whose checkpoints its cost measurement reads
    figures: list[str]  # PNG names
    captions: dict[str, str]

    @property
    def raw(self) -> dict:
        return self.params.raw

    def stage_info(self) -> list[str]:
        """The JSON summaries the report reads: banks, trainings, evaluations, cost measurements."""
        files = [bank(f)[1] for f in self.families]
        files += [model(f, l)[2] for f, l in self.runs]
        files += [evaluation(f, l)[1] for f, l in self.evaluations]
        files += [cost(f)[1] for f in self.bench]
        return files

    def results_tables(self) -> list[str]:
        return [evaluation(f, l)[0] for f, l in self.evaluations] + [cost(f)[0] for f in self.bench]


def make_plan(params_path: str = DEFAULT_PARAMS) -> Plan:
    """Validate the params file (a clear :class:`iai.utils.ConfigError` naming the key) and list its jobs."""
    from iai.bench import cost_pairs
    from iai.evaluate import evaluation_jobs
    from iai.figures import FIGURES
    from iai.params import load_params
    from iai.utils import ConfigError

    params = load_params(params_path)
    for r in params.runs:
        if r.name == COST:
            raise ConfigError(f"{params_path}: runs: a run may not be called {COST!r} "
                              f"({EVAL}/{r.family}/{COST}.csv holds the family's cost measurements)")
    bench = {}
    for family in params.families:
        names = [name for pair in cost_pairs(params, family) for name in pair]
        if names:
            bench[family] = names
    return Plan(params_path=str(params_path), params=params, families=list(params.families),
                runs=[(r.family, r.name) for r in params.runs], evaluations=evaluation_jobs(params),
                bench=bench, figures=list(FIGURES), captions=dict(FIGURES))
