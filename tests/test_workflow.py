"""The workflow: Snakemake lints clean, plans the right jobs, runs the tiny params end to end, recovers
from failures, and agrees with dvc.yaml. Every run happens in a copy of the repository under tmp.

The tiny params (params/test.yaml): one family, two references, two learned runs (iterative and
one-shot, so the cost measurement runs too), sizes 16..64, a few training iterations.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from iai.utils import read_summary

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = "params/test.yaml"
DEFAULT = "params/default.yaml"
TINY_JOBS = {"generate": 1, "train_run": 2, "evaluate": 2, "merge": 1, "figures": 1, "report": 1, "all": 1}
TINY_BENCH = "docs/bench/test"  # the committed cost benchmark of the tiny params (`make bench` writes it)


def env() -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "MPLBACKEND": "Agg",
            "DVC_NO_ANALYTICS": "1"}


def workspace(dest: Path) -> Path:
    """A copy of what the workflow reads: its rules, the params and the package sources."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in ("workflow", "params", "src"):
        shutil.copytree(REPO / part, dest / part, ignore=ignore)
    (dest / "docs/gpu").mkdir(parents=True)  # the committed GPU cost runs: the report judges them (claim 6)
    for path in (REPO / "docs/gpu").glob("cost_*.json"):
        shutil.copy(path, dest / "docs/gpu" / path.name)
    return dest


def snakemake(ws: Path, *args: str, params: str | None = TINY, timeout: float = 300,
              **kw) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "snakemake")] + (["--config", f"params={params}"] if params else []) + list(args)
    return subprocess.run(cmd, cwd=ws, env=env(), capture_output=True, text=True, timeout=timeout, **kw)


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run."""
    table = output.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)
            if m.group(1) != "total"}


def mtimes(ws: Path) -> dict[str, int]:
    return {str(p.relative_to(ws)): p.stat().st_mtime_ns for d in ("data", "reports") for p in (ws / d).rglob("*")
            if p.is_file()}


# ---------------------------------------------------------------------------- static checks


def test_lint_finds_nothing_but_the_missing_conda_envs(tmp_path):
    """Jobs run in the environment Snakemake runs in (make setup, environment.yml): no per-rule conda env."""
    res = snakemake(workspace(tmp_path), "--lint")
    lints = re.findall(r"^\s+\* (.*?):?$", res.stdout + res.stderr, flags=re.M)
    rules = re.findall(r"^Lints for rule (\w+)", res.stdout + res.stderr, flags=re.M)
    assert sorted(rules) == ["bench", "cost_scaling", "evaluate", "figures", "generate", "merge", "report", "train",
                             "train_run"]
    assert set(lints) == {"Specify a conda environment or container for each rule."}, res.stdout + res.stderr


def test_dry_run_lists_the_jobs_the_params_ask_for(tmp_path):
    ws = workspace(tmp_path)
    res = snakemake(ws, "--dry-run")
    assert res.returncode == 0, res.stderr
    assert job_counts(res.stdout) == TINY_JOBS
    # a new family and a new learner are params entries: the same rules plan their jobs
    raw = yaml.safe_load((ws / TINY).read_text())
    raw["families"]["logreg"] = {"kind": "linear_classification", "dim": 2, "n_classes": 3}
    raw["references"]["sgd"]["lr"]["logreg"] = 0.5
    raw["runs"].append({"family": "logreg", "name": "po", "regime": "parametric", "signal": "grad"})
    raw["runs"].append({"family": "logreg", "name": "one", "regime": "parametric", "signal": "obs", "seeds": 1})
    (ws / "params" / "more.yaml").write_text(yaml.safe_dump(raw))
    res = snakemake(ws, "--dry-run", params="params/more.yaml")
    assert res.returncode == 0, res.stderr
    # logreg: a bank, two runs (the params' 2 seeds in one job; 1 seed of its own: a per-seed job), its
    # references (sgd: bayes needs linear-Gaussian tasks) and its runs' evaluation (one job); no cost pair
    assert job_counts(res.stdout) == {**TINY_JOBS, "generate": 2, "train_run": 3, "train": 1, "evaluate": 4}
    assert not (ws / "data").exists()


def test_the_full_recipe_plans_every_training_and_builds_every_learner(tmp_path, monkeypatch):
    """params/paper.yaml (never run here end to end) passes the schema, plans one training job per run
    and seed, and every run builds into a learner, with stand-in MNIST / Fashion-MNIST IDX files."""
    from iai.core.learners import build_learner
    from iai.core.tasks import build_family
    from iai.params import load_params
    from test_images import fake_idx_folder

    ws = workspace(tmp_path)
    for name in ("mnist", "fashion_mnist"):
        fake_idx_folder(ws / "data" / name, side=28, per_class=12)
    res = snakemake(ws, "--dry-run", params="params/paper.yaml", timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    raw = yaml.safe_load((ws / "params/paper.yaml").read_text())
    counts = job_counts(res.stdout)  # a run with the params' seeds in one job, other runs one job per seed
    assert counts.get("train", 0) + raw["seeds"] * counts["train_run"] == sum(r.get("seeds", raw["seeds"])
                                                                             for r in raw["runs"])
    assert counts["train_run"] == sum(r.get("seeds", raw["seeds"]) == raw["seeds"] for r in raw["runs"])
    monkeypatch.chdir(ws)
    params = load_params("params/paper.yaml")
    families = {name: build_family(params.family(name))[0] for name in params.families}
    for run in params.runs:
        learner = build_learner(run, families[run.family])
        assert learner.name == run.name and learner.mode == run.learner.get("mode", "iterative")


def test_slurm_profile_dry_run_maps_gpu_and_resources(tmp_path):
    res = snakemake(workspace(tmp_path), "--dry-run", "--workflow-profile", "workflow/profiles/slurm")
    assert res.returncode == 0, res.stdout + res.stderr
    assert job_counts(res.stdout) == TINY_JOBS
    train = [block for block in res.stdout.split("\n\n") if re.search(r"^rule train_run:", block, flags=re.M)]
    assert len(train) == 2  # two runs, their two training seeds in one job each
    for block in train:
        resources = re.search(r"resources: (.*)", block).group(1)
        assert "gpu=1" in resources and "runtime=2160" in resources and "mem_mb=32000" in resources


def test_gpu_profile_plans_the_same_jobs(tmp_path):
    res = snakemake(workspace(tmp_path), "--dry-run", "--workflow-profile", "workflow/profiles/gpu")
    assert res.returncode == 0, res.stdout + res.stderr
    assert job_counts(res.stdout) == TINY_JOBS



def concurrent_trainings(output: str) -> int:
    """The most trainings running at once, from Snakemake's job start and finish lines."""
    running = most = 0
    for line in output.splitlines():
        if re.match(r"^(?:local)?rule train(?:_run)?:", line):
            running += 1
            most = max(most, running)
        elif re.search(r"Finished jobid: \d+ \(Rule: train(?:_run)?\)", line):
            running -= 1
    return most


@pytest.mark.slow
def test_trainings_packed_on_one_gpu_give_the_weights_of_one_at_a_time(tiny_run, tmp_path):
    """Two one-thread trainings on two cores, through the GPU profile: packed onto the GPU's slots
    (`resources: gpu=4`, the profile's), side by side; with `--resources gpu=1`, one after the other.
    Both give byte-identical checkpoints (here on the CPU)."""
    weights = {}
    for slots, most in ((None, 2), (1, 1)):
        ws = copy_run(tiny_run[0], tmp_path / f"slots{slots}")
        res = snakemake(ws, "--workflow-profile", "workflow/profiles/gpu", "--cores", "2", "--set-threads",
                        "train_run=1", *(["--resources", f"gpu={slots}"] if slots else []),
                        "--forcerun", "train_run", "--until", "train_run")
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        assert concurrent_trainings(res.stdout + res.stderr) == most, res.stdout + res.stderr
        weights[slots] = {p.relative_to(ws): p.read_bytes() for p in sorted((ws / "data/models").rglob("*.pt"))
                          if not p.name.endswith(".resume.pt")}
    assert len(weights[1]) == 4 and weights[1] == weights[None]


@pytest.mark.parametrize("edit, message", [
    (lambda raw: raw["runs"][0].update(train={"lr": -1}), r"runs\.0\.train\.lr: expected a number > 0, got -1"),
    (lambda raw: (raw["families"].update(scaling=raw["families"]["linreg"]),
                  raw["references"]["sgd"]["lr"].update(scaling=0.1)),
     r"families: a family may not be called 'scaling'"),
    (lambda raw: raw["runs"].append({"family": "linreg", "name": "references", "regime": "parametric"}),
     r"runs: a run may not be called 'references'"),
    (lambda raw: raw["runs"].append({"family": "linreg", "name": "runs", "regime": "parametric"}),
     r"runs: a run may not be called 'runs'"),
])
def test_bad_params_are_rejected_before_any_job(tmp_path, edit, message):
    ws = workspace(tmp_path)
    raw = yaml.safe_load((ws / TINY).read_text())
    edit(raw)
    (ws / "params" / "bad.yaml").write_text(yaml.safe_dump(raw))
    res = snakemake(ws, "--cores", "1", params="params/bad.yaml")
    assert res.returncode != 0
    assert re.search(f"invalid params: params/bad\\.yaml: {message}", res.stdout + res.stderr), res.stderr
    assert "Traceback" not in res.stderr
    assert not (ws / "data").exists() and not (ws / "logs").exists()


def test_unknown_config_key_is_rejected(tmp_path):
    res = snakemake(workspace(tmp_path), "--dry-run", "--config", "bogus=1", f"params={TINY}", params=None)
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "bogus" in out and "Additional properties are not allowed" in out


def test_every_figure_has_a_caption():
    from iai.analysis.captions import FIGURES

    captions = {p.stem for p in (REPO / "workflow/report/figures").glob("*.rst")}
    assert captions == {name.rsplit(".", 1)[0] for name in FIGURES}


def dvc_stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def stage_outputs(stage: dict) -> list[str]:
    """Every output path (outs, metrics, plots) of a dvc.yaml stage."""
    return [entry if isinstance(entry, str) else next(iter(entry))
            for kind in ("outs", "metrics", "plots") for entry in stage.get(kind, [])]


def stage_command(stage: dict) -> tuple[list[str], list[str]]:
    """(allowed rules, targets) of a stage's `[iai verify OUT... && ]${sm} RULE... -- TARGET...` command."""
    rules, targets = re.fullmatch(r"(?:iai verify [^&]+ && )?\$\{sm\} ([\w ]+) -- (.*)", stage["cmd"]).groups()
    return rules.split(), targets.split()


def test_dvc_stages_that_own_hashed_artifacts_verify_them_first():
    """A stage whose outs hold banks, checkpoints or per-task tables checks exactly those outs before
    Snakemake runs (so that a corrupted one is never recorded by `dvc repro`); `make reproduce` checks all."""
    for name, stage in dvc_stages().items():
        verified = re.match(r"iai verify ([^&]+) && ", stage["cmd"])
        # summary CSVs carry no content hash
        owned = [o for o in stage_outputs(stage) if o.startswith("data/") and not o.endswith(".csv")]
        assert (verified.group(1).split() if verified else []) == owned, f"dvc.yaml stage {name}: {stage['cmd']}"
    assert "iai verify data/banks data/models data/results\n" in (REPO / "Makefile").read_text()


def under(path: str, outs: list[str]) -> bool:
    return any(path == o or path.startswith(o.rstrip("/") + "/") for o in outs)


def planned_jobs(ws: Path, *args: str, params: str = DEFAULT) -> list[dict]:
    """The jobs of a forced dry run: rule, outputs and inputs of each (Snakemake's printed plan)."""
    res = snakemake(ws, "--dry-run", "--forceall", *args, params=params)
    assert res.returncode == 0, res.stdout + res.stderr
    jobs = []
    for block in re.split(r"\n\s*\n", res.stdout):
        rule = re.search(r"^(?:local)?rule (\w+):", block, flags=re.M)
        if rule:
            def field(name: str) -> list[str]:
                m = re.search(rf"^\s+{name}: (.*)$", block, flags=re.M)
                return [s.strip() for s in m.group(1).split(",")] if m else []

            jobs.append({"rule": rule.group(1), "output": field("output"), "input": field("input")})
    return jobs


@pytest.fixture(scope="module")
def default_plan(tmp_path_factory) -> list[dict]:
    return planned_jobs(workspace(tmp_path_factory.mktemp("plan")))


UNHASHED = {"reports/run.html"}  # this run's commit and durations: no stage owns what differs between runs


def test_dvc_stages_own_exactly_what_their_rules_make(default_plan):
    stages = dvc_stages()
    made = [(job["rule"], path) for job in default_plan for path in job["output"] if path not in UNHASHED]
    assert UNHASHED <= {path for job in default_plan for path in job["output"]}
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert all(f"/{path}" in ignored for path in UNHASHED)
    assert made, "the dry run planned no job"
    for rule, path in made:
        owners = [name for name, stage in stages.items() if under(path, stage_outputs(stage))]
        assert len(owners) == 1, f"{path} (rule {rule}) is an output of the dvc.yaml stages {owners}"
        allowed, _ = stage_command(stages[owners[0]])
        assert rule in allowed, f"dvc.yaml stage {owners[0]} owns {path} but does not allow rule {rule}"
    for name, stage in stages.items():
        allowed, targets = stage_command(stage)
        mine = {rule for rule, path in made if under(path, stage_outputs(stage))}
        assert mine, f"dvc.yaml stage {name}: no rule makes any of {stage_outputs(stage)}"
        targets_rules = {t for t in targets if t in allowed}
        assert set(allowed) == mine | targets_rules, (
            f"dvc.yaml stage {name} allows {allowed}, its outputs come from {mine}")
        for target in set(targets) - targets_rules:
            assert target in stage_outputs(stage), f"dvc.yaml stage {name}: target {target} is not one of its outs"


def test_dvc_stage_targets_plan_every_job_of_their_rules(tmp_path, default_plan):
    """A stage's target (e.g. the rule `models`) asks for every job its rules have in the whole pipeline."""
    ws = workspace(tmp_path)
    whole = {}
    for job in default_plan:
        whole[job["rule"]] = whole.get(job["rule"], 0) + 1
    for name, stage in dvc_stages().items():
        allowed, targets = stage_command(stage)
        for job in default_plan:  # what the upstream stages made (DVC runs them first)
            if job["rule"] not in allowed:
                for path in job["output"]:
                    (ws / path).parent.mkdir(parents=True, exist_ok=True)
                    (ws / path).touch()
        jobs = planned_jobs(ws, "--allowed-rules", *allowed, "--", *targets)
        counts = {}
        for job in jobs:
            counts[job["rule"]] = counts.get(job["rule"], 0) + 1
        for rule in allowed:
            if rule in whole:
                assert counts.get(rule) == whole[rule], f"dvc.yaml stage {name}: {counts} against {whole}"


def src_files(paths: list[str]) -> set[str]:
    out = set()
    for p in paths:
        path = REPO / p
        if p.startswith("src/"):
            out |= ({str(f.relative_to(REPO)) for f in path.rglob("*.py")} if path.is_dir() else {p})
    return out


def test_dvc_deps_are_the_code_each_rule_runs(default_plan):
    """dvc.yaml's deps and the rules' code inputs (workflow/rules/common.smk CODE) name the same files."""
    stages = dvc_stages()
    for name, stage in stages.items():
        allowed, _ = stage_command(stage)
        code = set()
        for job in default_plan:
            if job["rule"] in allowed:
                code |= {f for f in job["input"] if f.startswith("src/")}
        assert code, f"dvc.yaml stage {name}: its rules read no code"
        assert src_files(stage["deps"]) == code, (
            f"dvc.yaml stage {name}: deps {sorted(src_files(stage['deps']) ^ code)} differ from the rules' code")


def test_the_code_of_a_stage_is_its_layers():
    """What generate runs is tasks and below: editing a learner does not redo the banks."""
    deps = src_files(dvc_stages()["generate"]["deps"])
    assert "src/iai/core/tasks/base.py" in deps and "src/iai/stages/generate.py" in deps
    assert not any(f.startswith(("src/iai/core/learners", "src/iai/analysis")) for f in deps)
    assert not any(f.startswith("src/iai/core/tasks") for f in src_files(dvc_stages()["figures"]["deps"]))


# ---------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny params' cost benchmark (as `make bench` measures it, to be committed), then the whole
    pipeline on them, in a fresh copy; (workspace, seconds of the pipeline, the pipeline's output)."""
    ws = workspace(tmp_path_factory.mktemp("tiny"))
    res = snakemake(ws, "--cores", "2", "--forcerun", "bench", "cost_scaling", "--", "benchmarks", timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    start = time.perf_counter()
    res = snakemake(ws, "--cores", "2", timeout=600)
    seconds = time.perf_counter() - start
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return ws, seconds, res.stdout + res.stderr


@pytest.mark.slow
def test_full_tiny_run_completes_then_has_nothing_to_do(tiny_run):
    ws = tiny_run[0]
    import pandas as pd

    from iai.analysis.captions import FIGURES

    for path in ["data/results/results.csv", "reports/index.html", "reports/metrics.json",
                 *[f"reports/figures/{name}" for name in FIGURES]]:
        assert (ws / path).is_file(), path

    # the DVC-hashed folders hold artifacts only (no caches such as matplotlib's font list)
    assert not [str(p) for p in (ws / "data").rglob(".*")]
    results = pd.read_csv(ws / "data/results/results.csv")
    assert set(results.learner) == {"bayes", "prior", "sgd", "po", "po_once"}
    assert {"wall_time_s", "peak_memory_mb"} <= set(results.metric)  # the committed cost rows were merged
    assert {path.name for path in (ws / TINY_BENCH).iterdir()} == {"linreg.csv", "linreg.json", "scaling.json",
                                                                   "scaling.png"}
    ran = {rule for rule, _ in snakemake_jobs(tiny_run[2])}
    assert not {"bench", "cost_scaling", "train", "train_run"} & ran, ran  # nothing measured again
    assert sorted(results.n_train[results.metric == "mse"].unique()) == [16, 32, 64]
    res = snakemake(ws, "--dry-run")
    assert res.returncode == 0 and "Nothing to be done" in res.stdout, res.stdout


@pytest.mark.slow
def test_workflow_report_builds_offline(tiny_run):
    ws = tiny_run[0]
    res = snakemake(ws, "--report", "reports/workflow.html")
    assert res.returncode == 0, res.stderr
    html = (ws / "reports/workflow.html").read_text()
    assert "error_vs_n.png" in html and "cost.png" in html


def copy_run(ws: Path, dest: Path) -> Path:
    """A copy of a finished workspace, provenance records included, mtimes kept."""
    shutil.copytree(ws, dest, symlinks=True)
    return dest


@pytest.mark.slow
def test_failed_job_leaves_no_output_and_the_fixed_rerun_does_only_the_rest(tiny_run, tmp_path):
    ws = copy_run(tiny_run[0], tmp_path / "ws")
    raw = yaml.safe_load((ws / TINY).read_text())
    raw["runs"].append({"family": "linreg", "name": "wide", "regime": "parametric", "signal": "both",
                        "model": {"width": 15}})  # passes the schema, fails at build: width % heads != 0
    (ws / TINY).write_text(yaml.safe_dump(raw, sort_keys=False))
    before = mtimes(ws)
    res = snakemake(ws, "--cores", "2", "--keep-going")
    assert res.returncode != 0
    assert "model.width: expected a multiple of model.heads" in (ws / "logs/train/linreg/wide.log").read_text()
    assert not list((ws / "data/models/linreg").glob("wide*/*.pt"))
    assert {k: v for k, v in mtimes(ws).items() if k in before} == before  # nothing done was redone
    raw["runs"][-1]["model"]["width"] = 16
    (ws / TINY).write_text(yaml.safe_dump(raw, sort_keys=False))
    res = snakemake(ws, "--cores", "2", "data/results/eval/linreg/runs.parquet")
    assert res.returncode == 0, res.stderr[-3000:]
    # the family's learned runs are evaluated together: that job reruns, with wide's rows; nothing else does
    family_runs = {f"data/results/eval/linreg/runs.{ext}" for ext in ("parquet", "json", "timing.json")}
    after = mtimes(ws)
    assert {k: v for k, v in after.items() if k in before and k not in family_runs} == \
        {k: v for k, v in before.items() if k not in family_runs}
    assert all(after[k] > before[k] for k in family_runs)
    assert "wide" in set(pd.read_parquet(ws / "data/results/eval/linreg/runs.parquet")["learner"])
    assert (ws / "data/models/linreg/wide/seed1.pt").is_file()
    dry = snakemake(ws, "--dry-run")  # what is left: the merged table, figures and report
    assert job_counts(dry.stdout) == {"merge": 1, "figures": 1, "report": 1, "all": 1}


@pytest.mark.slow
def test_killed_training_is_marked_incomplete_and_resumes(tiny_run, tmp_path):
    ws = copy_run(tiny_run[0], tmp_path / "ws")
    raw = yaml.safe_load((ws / TINY).read_text())
    raw["runs"].append({"family": "linreg", "name": "long", "regime": "parametric", "signal": "obs",
                        "train": {"iterations": 400, "checkpoint_every": 20, "log_every": 20}})
    (ws / TINY).write_text(yaml.safe_dump(raw, sort_keys=False))
    target, resume = "data/models/linreg/long/seed0.pt", ws / "data/models/linreg/long/seed0.resume.pt"
    cmd = [str(BIN / "snakemake"), "--cores", "1", target, "--config", f"params={TINY}"]
    proc = subprocess.Popen(cmd, cwd=ws, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not resume.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # a crash: Snakemake and the training die at once
    proc.wait()
    assert resume.exists(), "training finished before it could be killed"
    assert not (ws / target).exists()  # the checkpoint is written atomically, at the end only
    assert snakemake(ws, "--unlock").returncode == 0
    # the training log written at the last checkpoint is on disk, but Snakemake knows it is partial
    strict = snakemake(ws, "--dry-run", "--workflow-profile", "none", target)
    assert strict.returncode != 0
    incomplete = (strict.stdout + strict.stderr).split("Incomplete files:", 1)
    assert len(incomplete) == 2 and "data/models/linreg/long/seed0.csv" in incomplete[1], strict.stdout + strict.stderr
    res = snakemake(ws, "--cores", "1", target)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming linreg/long at iteration" in (ws / "logs/train/linreg/long.log").read_text()
    assert not resume.exists()
    summary = read_summary(ws / "data/models/linreg/long/seed0.json")  # with its timing sidecar
    assert summary["iterations"] == 400 and summary["resumed_at"] >= 20


def dvc(ws: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dvc"), *args], cwd=ws, env=env(), capture_output=True, text=True, timeout=300)


def tiny_dvc_project(ws: Path) -> None:
    """Make a finished tiny workspace a DVC project driven by the real dvc.yaml, pointed at the tiny params."""
    assert subprocess.run(["git", "init", "-q"], cwd=ws).returncode == 0
    assert dvc(ws, "init", "-q").returncode == 0
    shutil.copy(REPO / ".dvcignore", ws / ".dvcignore")  # *.timing.json: what DVC does not hash
    (ws / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text().replace(DEFAULT, TINY)
                                 .replace("docs/bench/default", TINY_BENCH))
    (ws / "workflow/config.yaml").write_text(f"params: {TINY}\n")
    assert dvc(ws, "commit", "--force", "--quiet").returncode == 0  # what `make reproduce` does after Snakemake
    assert "Data and pipelines are up to date" in dvc(ws, "status").stdout


def snakemake_jobs(output: str) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job a Snakemake run printed."""
    jobs = []
    for block in re.split(r"\n\s*\n", output):
        rule = re.search(r"^(?:local)?rule (\w+):", block, flags=re.M)
        if rule:
            wildcards = re.search(r"^\s+wildcards: (.*)$", block, flags=re.M)
            jobs.append((rule.group(1), wildcards.group(1) if wildcards else ""))
    return jobs


@pytest.mark.slow
def test_two_runs_of_one_commit_record_the_same_dvc_lock(tiny_run, tmp_path):
    """A second fresh workspace with the same committed benchmark: every output DVC hashes is the same
    (timings and the commit live in *.timing.json and reports/run.html, which it does not hash)."""
    first = copy_run(tiny_run[0], tmp_path / "first")
    second = workspace(tmp_path / "second")
    shutil.copytree(first / TINY_BENCH, second / TINY_BENCH)
    res = snakemake(second, "--cores", "2", timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for ws in (first, second):
        tiny_dvc_project(ws)
    assert (first / "dvc.lock").read_text() == (second / "dvc.lock").read_text()
    assert (first / "reports/run.html").read_text() != (second / "reports/run.html").read_text()  # durations


@pytest.mark.slow
def test_dvc_repro_after_a_claims_option_change_reruns_the_report_only(tiny_run, tmp_path):
    ws = copy_run(tiny_run[0], tmp_path / "ws")
    tiny_dvc_project(ws)
    before = mtimes(ws)
    raw = yaml.safe_load((ws / TINY).read_text())
    raw["report"]["level"] = 0.9  # read by the report job alone
    (ws / TINY).write_text(yaml.safe_dump(raw, sort_keys=False))
    status = dvc(ws, "status").stdout
    assert re.findall(r"^(\S+):$", status, flags=re.M) == ["figures", "report"], status  # both read `report:`
    repro = dvc(ws, "repro")
    assert repro.returncode == 0, repro.stdout + repro.stderr
    assert re.findall(r"Running stage '([^']+)'", repro.stdout) == ["figures", "report"]
    # the figures job had nothing to do
    assert [rule for rule, _ in snakemake_jobs(repro.stdout + repro.stderr)] == ["report"]
    changed = {k for k, v in mtimes(ws).items() if before.get(k) != v}
    assert changed == {"reports/index.html", "reports/metrics.json", "reports/claims.md",
                       "reports/comparisons.json", "reports/run.html"}, changed
    assert "Data and pipelines are up to date" in dvc(ws, "status").stdout
    res = snakemake(ws, "--dry-run")  # the job DVC ran went through Snakemake: it agrees
    assert "Nothing to be done" in res.stdout, res.stdout


@pytest.mark.slow
def test_a_bench_option_change_replans_the_benchmark_alone_and_a_new_benchmark_the_report(tiny_run, tmp_path):
    # the pipeline reads the committed benchmark: a bench option is read by `make bench` alone, and
    # bench.scaling_tasks by `iai bench cost` alone (not the cost table of `iai bench`)
    from iai.params import load_params

    ws = copy_run(tiny_run[0], tmp_path / "ws")
    recipe = (ws / TINY).read_text()
    raw = yaml.safe_load(recipe)
    raw["bench"]["scaling_tasks"] = load_params(ws / TINY).bench.scaling_tasks + 1
    (ws / TINY).write_text(yaml.safe_dump(raw, sort_keys=False))
    # the report alone reruns (it shows the whole recipe), without the committed cost scaling, which was
    # measured with other settings (claim 6 is then not judged), and says so; the cost rows are still its own
    res = snakemake(ws, "--dry-run")
    assert res.returncode == 0, res.stderr
    assert job_counts(res.stdout) == {"report": 1, "all": 1}
    warning = [line for line in res.stderr.splitlines() if line.startswith("warning: ")]
    assert warning == [f"warning: {TINY_BENCH}/scaling.json: measured with other settings than {TINY}'s (or before "
                       "they were recorded), so not read; `make bench` measures them again"], res.stderr
    command = re.search(r"^Shell command: (iai report .*)$", res.stdout, flags=re.M).group(1)
    assert "--cost-scaling" not in command and f"{TINY_BENCH}/linreg.json" in command
    res = snakemake(ws, "--dry-run", "benchmarks")
    assert res.returncode == 0, res.stderr
    assert job_counts(res.stdout) == {"cost_scaling": 1, "benchmarks": 1}
    # a cost pair's run trained otherwise: its checkpoints, so the cost table too, are not the benchmark's
    raw["runs"][0]["train"] = {"lr": 0.002}  # `po`, of the cost pair
    (ws / TINY).write_text(yaml.safe_dump(raw, sort_keys=False))
    res = snakemake(ws, "--dry-run")
    assert res.returncode == 0, res.stderr
    stale = f"{TINY_BENCH}/linreg.csv, {TINY_BENCH}/linreg.json, {TINY_BENCH}/scaling.json: measured with other"
    assert f"warning: {stale}" in res.stderr, res.stderr
    # a benchmark measured again (here: one number of it changed) reruns the merge and what reads it
    (ws / TINY).write_text(recipe)
    table = ws / TINY_BENCH / "linreg.csv"
    rows = pd.read_csv(table)
    rows.loc[0, "value"] *= 2
    rows.to_csv(table, index=False)
    res = snakemake(ws, "--dry-run")
    assert res.returncode == 0, res.stderr
    assert job_counts(res.stdout) == {"merge": 1, "figures": 1, "report": 1, "all": 1}


@pytest.mark.slow
def test_dvc_repro_after_one_run_changes_retrains_that_run_only(tiny_run, tmp_path):
    ws = copy_run(tiny_run[0], tmp_path / "ws")
    tiny_dvc_project(ws)
    before = mtimes(ws)
    raw = yaml.safe_load((ws / TINY).read_text())
    raw["runs"][0]["train"] = {"lr": 0.002}  # the run `po` alone
    (ws / TINY).write_text(yaml.safe_dump(raw, sort_keys=False))
    repro = dvc(ws, "repro")
    assert repro.returncode == 0, repro.stdout + repro.stderr
    # DVC runs the stages downstream of the params; Snakemake inside them runs the changed run's jobs only
    assert re.findall(r"Running stage '([^']+)'", repro.stdout) == ["train", "evaluate", "merge", "figures", "report"]
    jobs = snakemake_jobs(repro.stdout + repro.stderr)
    assert [j for j in jobs if j[0].startswith("train")] == [("train_run", "run=linreg/po")], jobs
    # the family's runs are evaluated in one job (the references' job does not rerun)
    assert [j for j in jobs if j[0] == "evaluate"] == [("evaluate", "family=linreg, learner=runs")], jobs
    assert not [j for j in jobs if j[0] == "generate"], jobs
    after = mtimes(ws)
    changed = {k for k in before if after.get(k) != before[k]}
    assert {"data/models/linreg/po/seed0.pt", "data/models/linreg/po/seed1.pt"} <= changed
    assert not any(k.startswith("data/models/linreg/po_once/") for k in changed)
    assert not any(k.startswith("data/banks") for k in changed)
    assert "Data and pipelines are up to date" in dvc(ws, "status").stdout
    assert "Nothing to be done" in snakemake(ws, "--dry-run").stdout


@pytest.mark.slow
def test_a_corrupted_bank_stops_dvc_repro_before_anything_is_recorded(tiny_run, tmp_path):
    ws = copy_run(tiny_run[0], tmp_path / "ws")
    tiny_dvc_project(ws)
    lock = (ws / "dvc.lock").read_text()
    bank = sorted((ws / "data/banks").glob("*.pt"))[0]
    good = bank.read_bytes()
    raw = bytearray(good)
    middle = len(raw) // 2
    raw[middle:middle + 64] = bytes(b ^ 0xFF for b in raw[middle:middle + 64])  # the same size, 64 bytes flipped
    bank.write_bytes(bytes(raw))
    before = mtimes(ws)
    assert "modified:" in dvc(ws, "status").stdout  # DVC sees the change, and would rerun the stage
    repro = dvc(ws, "repro")
    out = repro.stdout + repro.stderr
    assert repro.returncode != 0, out
    name = str(bank.relative_to(ws))
    lines = [line for line in out.splitlines() if line.startswith(f"iai verify: {name}: corrupted")]
    assert len(lines) == 1 and "dvc checkout --force data/banks" in lines[0], out
    assert not snakemake_jobs(out), out  # stopped before any job
    assert (ws / "dvc.lock").read_text() == lock  # the good hash is still the recorded one
    assert mtimes(ws) == before  # nothing else written
    assert dvc(ws, "checkout", "--force", "data/banks").returncode == 0  # the remedy the line names
    assert bank.read_bytes() == good
    assert "Data and pipelines are up to date" in dvc(ws, "status").stdout


def readme_block(heading: str) -> str:
    """The first code block under a README heading."""
    section = (REPO / "README.md").read_text().split(f"### {heading}\n", 1)[1]
    return re.search(r"```\n(.*?)```", section, flags=re.S).group(1)


def shell(ws: Path, script: str, **extra_env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ws, env={**env(), **extra_env},
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_readme_dvc_commands_run_as_printed(tiny_run, tmp_path):
    """README "Versioning artifacts with DVC", line by line: push and commit the results, then in a fresh
    clone `make setup && make pull` restores every artifact, and Snakemake has nothing to do."""
    ws = copy_run(tiny_run[0], tmp_path / "ws")
    for name in ("Makefile", "pyproject.toml", ".gitignore", ".dvcignore"):
        shutil.copy(REPO / name, ws / name)
    tiny_dvc_project(ws)
    git = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    code = shell(ws, "git add dvc.yaml Makefile pyproject.toml .gitignore .dvcignore .dvc workflow params src docs"
                     " && git commit -qm code", **git)
    assert code.returncode == 0, code.stderr
    here, elsewhere = readme_block("Versioning artifacts with DVC").split("# elsewhere, in a fresh clone:\n")
    here = here.replace("/path/to/dvc-store", str(tmp_path / "store"))
    res = shell(ws, here, **git)
    assert res.returncode == 0, res.stdout + res.stderr
    clone = tmp_path / "clone"
    assert subprocess.run(["git", "clone", "-q", str(ws), str(clone)]).returncode == 0
    # the environment `make setup` would build is this one (VENV): setup finds it up to date
    os.utime(clone / "pyproject.toml", (0, 0))
    res = shell(clone, elsewhere, VENV=str(BIN.parent), PARAMS=TINY)
    assert res.returncode == 0, res.stdout + res.stderr
    for path in ("data/banks", "data/models", "data/results/eval", "data/results/per_task.parquet",
                 "reports/index.html", "reports/metrics.json", "reports/claims.md", "reports/comparisons.json"):
        theirs, mine = ws / path, clone / path
        files = sorted(p.relative_to(theirs) for p in theirs.rglob("*")  # timings are not versioned
                       if p.is_file() and not p.name.endswith(".timing.json")) if theirs.is_dir() else [""]
        for f in files:
            assert (mine / f).read_bytes() == (theirs / f).read_bytes(), f"{path}/{f}"
    assert "Data and pipelines are up to date" in dvc(clone, "status").stdout
    assert "Nothing to be done" in snakemake(clone, "--dry-run").stdout
    # then one run's params change replans that run's jobs alone (and what reads them)
    raw = yaml.safe_load((clone / TINY).read_text())
    raw["runs"][0]["train"] = {"lr": 0.002}  # the run `po`
    (clone / TINY).write_text(yaml.safe_dump(raw, sort_keys=False))
    plan = snakemake(clone, "--dry-run")
    assert job_counts(plan.stdout) == {"train_run": 1, "evaluate": 1, "merge": 1, "figures": 1, "report": 1,
                                       "all": 1}, plan.stdout
    assert "run=linreg/po\n" in plan.stdout + "\n" and "learner=runs" in plan.stdout


GIT_USER = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def published(tiny_run, tmp_path: Path) -> tuple[Path, Path]:
    """A finished tiny DVC project, committed to git and pushed to a local remote: (workspace, remote)."""
    ws = copy_run(tiny_run[0], tmp_path / "ws")
    shutil.copy(REPO / ".gitignore", ws / ".gitignore")
    tiny_dvc_project(ws)
    store = tmp_path / "store"
    res = shell(ws, f"dvc remote add -d store {store} && dvc push -q && git add -A && git commit -qm results",
                **GIT_USER)
    assert res.returncode == 0, res.stdout + res.stderr
    return ws, store


def remote_object(ws: Path, store: Path, path: str) -> Path:
    """The remote's copy of one file of an output directory (DVC 3: files/md5/XX/REST)."""
    out, rel = path.split("/", 2)[:2], path.split("/", 2)[2]
    lock = yaml.safe_load((ws / "dvc.lock").read_text())
    digest = next(o["md5"] for st in lock["stages"].values() for o in st.get("outs", [])
                  if o["path"] == "/".join(out))
    listing = json.loads((store / "files/md5" / digest[:2] / digest[2:]).read_text())
    md5 = next(e["md5"] for e in listing if e["relpath"] == rel)
    return store / "files/md5" / md5[:2] / md5[2:]


@pytest.mark.slow
def test_a_file_corrupted_in_the_remote_is_named_and_not_checked_out(tiny_run, tmp_path):
    """`iai pull` (make pull): one line naming the file, every good file checked out, and a workspace copy
    of the corrupted file left as it was."""
    ws, store = published(tiny_run, tmp_path)
    name = "data/models/linreg/po_once/seed1.csv"
    bad = remote_object(ws, store, name)
    bad.chmod(0o644)
    bad.write_bytes(bytes(b ^ 0xFF for b in bad.read_bytes()))  # the same size, every byte flipped
    # what this guards against: a plain `dvc pull` takes the bad object, silently
    plain = tmp_path / "plain"
    assert subprocess.run(["git", "clone", "-q", str(ws), str(plain)]).returncode == 0
    assert dvc(plain, "pull").returncode == 0
    assert (plain / name).read_bytes() == bad.read_bytes() != (ws / name).read_bytes()
    assert "Data and pipelines are up to date" in dvc(plain, "status").stdout

    remote_object(ws, store, "data/banks/linreg.json").unlink()  # and one object missing from the remote
    clone = tmp_path / "clone"
    assert subprocess.run(["git", "clone", "-q", str(ws), str(clone)]).returncode == 0
    (clone / name).parent.mkdir(parents=True)
    (clone / name).write_text("the workspace's own copy\n")
    res = subprocess.run([str(BIN / "iai"), "pull"], cwd=clone, env=env(), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [line for line in res.stdout.splitlines() if ": not checked out" in line]
    # a directory with an object missing from the remote is not fetched (DVC keeps no listing of it)
    assert len(lines) == 2 and lines[0].startswith("iai pull: data/banks: not fetched (dvc fetch failed: "), res.stdout
    assert lines[1].startswith(f"iai pull: {name}: corrupted in the remote (md5 expected "), res.stdout
    assert "2 file(s) missing or corrupted in the remote" in res.stderr
    assert (clone / name).read_text() == "the workspace's own copy\n"  # not overwritten by the bad one
    assert not (clone / "data/banks").exists()
    for out in ("data/models", "data/results/eval", "reports/figures"):  # every good file is checked out
        for theirs in (p for p in (ws / out).rglob("*") if p.is_file() and not p.name.endswith(".timing.json")):
            rel = str(theirs.relative_to(ws))
            if rel != name:
                assert (clone / rel).read_bytes() == theirs.read_bytes(), rel
    assert "Data and pipelines are up to date" not in dvc(clone, "status").stdout  # `make adopt` refuses


@pytest.mark.slow
def test_the_readme_experiment_command_runs_as_printed(tiny_run, tmp_path):
    """`dvc exp run -S FILE:KEY=VALUE` as the README prints it (on the tiny params' file), then
    `dvc exp show` and `dvc metrics diff` as it names them."""
    ws = copy_run(tiny_run[0], tmp_path / "ws")
    tiny_dvc_project(ws)
    git = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    assert shell(ws, "git add -A && git commit -qm results", **git).returncode == 0
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"`(dvc (?:exp run -S|exp show|metrics diff)[^`]*)`", readme)
    run = next(c for c in commands if c.startswith("dvc exp run"))
    assert run.startswith(f"dvc exp run -S {DEFAULT}:")
    res = shell(ws, run.replace(DEFAULT, TINY), **git)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for command in (c for c in commands if not c.startswith("dvc exp run")):
        res = shell(ws, command, **git)
        assert res.returncode == 0, command + res.stderr
        assert max(map(len, res.stdout.splitlines())) <= 160, f"{command}: unreadable\n{res.stdout[:3000]}"
        assert "verdict" in res.stdout or "claim" in res.stdout, res.stdout
    # the experiment is listed with its metrics, and `dvc exp apply` brings it into the workspace
    key, value = run.split(f"{DEFAULT}:", 1)[1].split("=")
    names = shell(ws, "dvc exp list --name-only", **git).stdout.split()
    assert len(names) == 1, names
    table = shell(ws, "dvc exp show --csv", **git).stdout.splitlines()
    header, row = table[0].split(","), next(line for line in table if names[0] in line).split(",")
    assert any(h.startswith("verdicts.") and row[i] for i, h in enumerate(header)), table[:2]
    res = shell(ws, f"dvc exp apply {names[0]}", **git)
    assert res.returncode == 0, res.stdout + res.stderr
    section, leaf = key.rsplit(".", 1)
    assert yaml.safe_load((ws / TINY).read_text())[section][leaf] == float(value)
    assert "Data and pipelines are up to date" in dvc(ws, "status").stdout
