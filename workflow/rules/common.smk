# The jobs a params file asks for, the params each job reads, and the code each stage runs.

import hashlib
import json
import sys
from pathlib import Path

from iai.analysis.captions import FIGURES
from iai.core.plan import ALL_REFERENCES, ALL_RUNS, bench_families, evaluation_jobs, family_runs
from iai.params import load_params
from iai.utils import ConfigError

PARAMS_FILE = config["params"]
try:
    PARAMS = load_params(PARAMS_FILE)  # validated here: one message naming the key, before any job
    EVALUATIONS = evaluation_jobs(PARAMS)  # evaluated: each family's references (one job), then its runs (one job)
except ConfigError as err:
    where = "" if str(err).startswith(PARAMS_FILE) else f"{PARAMS_FILE}: "  # load_params names the file itself
    raise WorkflowError(f"invalid params: {where}{err}")
RAW = PARAMS.raw

FAMILIES = list(PARAMS.families)
RUNS = [(r.family, r.name) for r in PARAMS.runs]  # trained: (family, learner)
SEEDS = {(r.family, r.name): r.seeds for r in PARAMS.runs}  # training seeds per run
# trained in one job per run, by train_run: the runs with the params' `seeds` (more than one)
RUNS_OF_ALL_SEEDS = [run for run, n in SEEDS.items() if n == RAW.get("seeds", 1) and n > 1]
BENCH = bench_families(PARAMS)  # measured by `iai bench`: family -> the runs of its (iterative, one-shot) pairs
# the family whose learners `iai bench cost` measures for claim 6: the first cost family with a pair
COST_SCALING_FAMILY = next(iter(BENCH), FAMILIES[0])
# The cost benchmark (claim 6) is timings: no two runs give the same numbers. It is measured by
# `make bench` (rules bench and cost_scaling, never run by `all`) into a folder committed with the
# code, one per params file; merge and report read what is committed there, so that `make reproduce`
# of one commit gives the same files, hashes and report on every run.
BENCH_DIR = f"docs/bench/{Path(PARAMS_FILE).stem}"
COST_SCALING = f"{BENCH_DIR}/scaling.json"  # claim 6 is judged on it
FIGURE_FILES = [f"reports/figures/{name}" for name in FIGURES]
# cost benchmarks of other devices, committed (GPU runs): the report judges each by claim 6's rule
DEVICE_COSTS = sorted(str(p) for p in Path("docs/gpu").glob("cost_*.json"))

if "scaling" in FAMILIES:
    raise WorkflowError(f"invalid params: {PARAMS_FILE}: families: a family may not be called 'scaling' "
                        f"({COST_SCALING} holds the cost scaling of `iai bench cost`)")
for family, learner in RUNS:
    if learner in (ALL_REFERENCES, ALL_RUNS):
        held = {ALL_REFERENCES: "reference evaluations", ALL_RUNS: "run evaluations"}
        raise WorkflowError(f"invalid params: {PARAMS_FILE}: runs: a run may not be called {learner!r} "
                            f"(data/results/eval/{family}/{learner}.* holds the family's {held[learner]})")


wildcard_constraints:
    family=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    learner=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    seed=r"[0-9]+",


# The code a stage runs, by layer (src/iai; the direction is checked by tests/test_layers.py): a job
# reruns when one of these files changes. dvc.yaml lists the same files as each stage's deps.
BASE = ["src/iai/__init__.py", "src/iai/cli.py", "src/iai/params.py", "src/iai/params.schema.yaml", "src/iai/utils.py"]


def files(*parts):
    out = []
    for part in parts:
        path = Path("src/iai") / part
        out += sorted(str(p) for p in path.rglob("*.py")) if path.is_dir() else [str(path)]
    return out


CODE = {
    "generate": BASE + files("core/__init__.py", "core/predictors.py", "core/tasks", "stages/__init__.py",
                             "stages/generate.py"),
    "train": BASE + files("core", "stages/__init__.py", "stages/train.py"),
    "evaluate": BASE + files("core", "stages/__init__.py", "stages/evaluate.py"),
    "bench": BASE + files("core", "stages/__init__.py", "stages/bench"),
    "merge": BASE + files("core/__init__.py", "core/results.py", "stages/__init__.py", "stages/merge.py"),
    "figures": BASE + files("core/__init__.py", "core/results.py", "analysis/__init__.py", "analysis/captions.py",
                            "analysis/selection.py", "analysis/plotting.py", "analysis/figures.py"),
    "report": BASE + files("core/__init__.py", "core/results.py", "analysis"),
}


def settings(**sections):
    """The params a job reads, as canonical JSON: Snakemake reruns the job when this text changes."""
    return json.dumps(sections, sort_keys=True, separators=(",", ":"))


def run_settings(family, learner):
    """A learned run's entry with the model and train defaults merged in: all that `iai train` reads."""
    run = PARAMS.run(family, learner)
    return settings(seed=RAW["seed"], device=RAW.get("device"), family=RAW["families"][family], name=learner,
                    learner=run.learner, model=run.model, train=run.train, seeds=run.seeds)


def evaluation_settings(family, learner):
    common = dict(seed=RAW["seed"], device=RAW.get("device"), family=RAW["families"][family],
                  evaluate=RAW["evaluate"])
    if learner == ALL_REFERENCES:
        return settings(**common, batch_size=RAW["train"]["batch_size"], references=RAW["references"])
    names = family_runs(PARAMS, family) if learner == ALL_RUNS else [learner]
    return settings(**common, seeds={name: SEEDS[(family, name)] for name in names})


def every_core():
    """Every core of a local run (--cores); on a cluster, where no --cores is given, 1 here and the
    profile's set-threads decides (workflow.cores would stop the workflow there)."""
    return workflow.resource_settings.cores or 1


def train_threads(family, learner):
    """The run's train.threads (0 = every core Snakemake may use)."""
    return PARAMS.run(family, learner).train.get("threads", 0) or every_core()


def run_files(family, learner, ext):
    """One file per training seed of a run: data/models/<family>/<learner>/seed<S>.<ext>."""
    return [f"data/models/{family}/{learner}/seed{s}.{ext}" for s in range(SEEDS[(family, learner)])]


def evaluation_inputs(wildcards):
    """The family's bank, and for learned runs the checkpoint of every training seed of each."""
    inputs = {"bank": f"data/banks/{wildcards.family}.pt"}
    if wildcards.learner != ALL_REFERENCES:
        names = family_runs(PARAMS, wildcards.family) if wildcards.learner == ALL_RUNS else [wildcards.learner]
        inputs["models"] = [path for name in names for path in run_files(wildcards.family, name, "pt")]
    return inputs


def stage_summaries():
    """The JSON summaries the report reads: banks, trainings, evaluations."""
    out = [f"data/banks/{f}.json" for f in FAMILIES]
    out += [path for f, l in RUNS for path in run_files(f, l, "json")]
    return out + [f"data/results/eval/{f}/{l}.json" for f, l in EVALUATIONS]


def evaluation_tables():
    """Per-task tables of the evaluations (Parquet)."""
    return [f"data/results/eval/{f}/{l}.parquet" for f, l in EVALUATIONS]


def cost_tables():
    """The cost tables `iai bench` writes (summary CSV: measurements, not per task), one per family."""
    return [f"{BENCH_DIR}/{f}.csv" for f in BENCH]


def benchmark_files():
    """What `make bench` writes: the cost tables, their summaries and the cost scaling."""
    return [p for table in cost_tables() for p in (table, table.replace(".csv", ".json"))] + [COST_SCALING]


def bench_settings(family):
    """What `iai bench` (the table) reads: the family, the trained runs of its cost pairs (what their
    checkpoints were trained from) and bench.sizes, tasks, repeats (not bench.max_n or
    bench.scaling_tasks: the cost_scaling rule's)."""
    return settings(seed=RAW["seed"], device=RAW.get("device"), family=RAW["families"][family],
                    runs=[run_settings(family, name) for name in BENCH[family]],
                    bench=dict(sizes=PARAMS.bench.sizes, tasks=PARAMS.bench.tasks, repeats=PARAMS.bench.repeats))


# what `iai bench cost` reads: the family, its cost pair's runs, and the bench section's sizes
COST_SCALING_SETTINGS = settings(
    family=RAW["families"][COST_SCALING_FAMILY], model=RAW["model"], train=RAW["train"],
    runs=[r for r in RAW["runs"]
          if r["family"] == COST_SCALING_FAMILY and r["name"] in BENCH.get(COST_SCALING_FAMILY, [])],
    max_n=PARAMS.bench.max_n, repeats=PARAMS.bench.repeats, tasks=PARAMS.bench.scaling_tasks)


def recipe(text):
    """A short digest of a benchmark job's settings: written into its JSON, so that a later run can tell
    whether the committed benchmark was measured with its own params."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def measured_recipe(json_path):
    try:
        return json.loads(Path(json_path).read_text()).get("recipe")
    except (OSError, ValueError, AttributeError):
        return None


def committed_benchmark():
    """The benchmark files merge and report read: those of benchmark_files() that are there (none before
    a first `make bench`) and were measured with these params' settings. They are the rules' params
    (with their file_digest), not their inputs, so that Snakemake never schedules the benchmark
    itself, and reruns them when it is measured again. A file of other settings is left out
    (claim 6 is then not judged, or the family has no cost rows), with a warning."""
    expected = {COST_SCALING: recipe(COST_SCALING_SETTINGS)}
    for family in BENCH:
        for ext in (".csv", ".json"):
            expected[f"{BENCH_DIR}/{family}{ext}"] = recipe(bench_settings(family))
    present, stale = [], []
    for path in benchmark_files():
        if Path(path).is_file():
            record = path if path.endswith(".json") else path[: -len(".csv")] + ".json"
            (present if measured_recipe(record) == expected[path] else stale).append(path)
    if stale:
        print(f"warning: {', '.join(stale)}: measured with other settings than {PARAMS_FILE}'s (or before they were "
              "recorded), so not read; `make bench` measures them again", file=sys.stderr)
    return present


def file_digest(paths):
    """A digest of the files' names and bytes: the param by which a rule reruns when one is measured again."""
    digest = hashlib.sha256()
    for path in paths:
        for part in (path.encode(), b"\0", Path(path).read_bytes()):
            digest.update(part)
    return digest.hexdigest()[:16]


BENCHMARK = committed_benchmark()
COST_ROWS = [p for p in BENCHMARK if p in cost_tables()]  # the cost tables the merge reads


# Targets of the dvc.yaml stages (`snakemake --allowed-rules generate banks -- banks`): one per stage.
localrules:
    all,
    banks,
    models,
    evaluations,
    benchmarks,
