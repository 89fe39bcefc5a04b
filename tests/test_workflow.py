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

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = "params/test.yaml"
sys.path.insert(0, str(REPO / "workflow" / "scripts"))
import plan as P  # noqa: E402

TINY_JOBS = {"generate": 1, "resolve_run": 2, "train": 2, "evaluate": 4, "bench": 1, "merge": 1, "figures": 1,
             "report": 1, "all": 1}


def env() -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "MPLBACKEND": "Agg",
            "DVC_NO_ANALYTICS": "1"}


def workspace(dest: Path) -> Path:
    """A copy of what the workflow reads: its rules, the params and the package sources."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in ("workflow", "params", "src"):
        shutil.copytree(REPO / part, dest / part, ignore=ignore)
    return dest


def snakemake(ws: Path, *args: str, params: str | None = TINY, timeout: float = 300,
              **kw) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "snakemake"), *args] + (["--config", f"params={params}"] if params else [])
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


def test_lint_is_clean(tmp_path):
    res = snakemake(workspace(tmp_path), "--lint")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Congratulations, your workflow is in a good condition!" in res.stdout + res.stderr


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
    (ws / "params" / "more.yaml").write_text(yaml.safe_dump(raw))
    res = snakemake(ws, "--dry-run", params="params/more.yaml")
    assert res.returncode == 0, res.stderr
    # logreg: a bank, a run, sgd and the run evaluated (bayes needs linear-Gaussian tasks); no cost pair
    assert job_counts(res.stdout) == {**TINY_JOBS, "generate": 2, "resolve_run": 3, "train": 3, "evaluate": 6}
    assert not (ws / "data").exists()


def test_slurm_profile_dry_run_maps_gpu_and_resources(tmp_path):
    res = snakemake(workspace(tmp_path), "--dry-run", "--workflow-profile", "workflow/profiles/slurm")
    assert res.returncode == 0, res.stdout + res.stderr
    assert job_counts(res.stdout) == TINY_JOBS
    train = [block for block in res.stdout.split("\n\n") if re.search(r"^rule train:", block, flags=re.M)]
    assert len(train) == 2
    for block in train:
        resources = re.search(r"resources: (.*)", block).group(1)
        assert "gpu=1" in resources and "runtime=720" in resources and "mem_mb=32000" in resources


def test_gpu_profile_serializes_gpu_jobs(tmp_path):
    config = yaml.safe_load((REPO / "workflow/profiles/gpu/config.yaml").read_text())
    assert "gpu=1" in config["resources"]
    res = snakemake(workspace(tmp_path), "--dry-run", "--workflow-profile", "workflow/profiles/gpu")
    assert res.returncode == 0, res.stdout + res.stderr
    assert job_counts(res.stdout) == TINY_JOBS


@pytest.mark.parametrize("edit, message", [
    (lambda raw: raw["runs"][0].update(train={"lr": -1}), r"runs\.0\.train\.lr: expected a number > 0, got -1"),
    (lambda raw: raw["runs"].append({"family": "linreg", "name": "cost", "regime": "parametric"}),
     r"runs: a run may not be called 'cost'"),
])
def test_bad_params_are_rejected_before_any_job(tmp_path, edit, message):
    ws = workspace(tmp_path)
    raw = yaml.safe_load((ws / TINY).read_text())
    edit(raw)
    (ws / "params" / "bad.yaml").write_text(yaml.safe_dump(raw))
    res = snakemake(ws, "--cores", "1", params="params/bad.yaml")
    assert res.returncode != 0
    assert re.search(f"invalid params: params/bad\\.yaml: {message}", res.stderr), res.stderr
    assert "Traceback" not in res.stderr
    assert not (ws / "data").exists() and not (ws / "logs").exists()


def test_unknown_config_key_is_rejected(tmp_path):
    res = snakemake(workspace(tmp_path), "--dry-run", "--config", "bogus=1", f"params={TINY}", params=None)
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "bogus" in out and "Additional properties are not allowed" in out


def test_every_figure_has_a_caption():
    from iai.analysis.figures import FIGURES

    captions = {p.stem for p in (REPO / "workflow/report/figures").glob("*.rst")}
    assert captions == {name.rsplit(".", 1)[0] for name in FIGURES}


def test_plan_knows_the_references_and_follows_imports():
    from iai.core.learners.references import REFERENCE_NAMES

    assert P.REFERENCES == REFERENCE_NAMES
    merge = P.code_files("results")
    assert "src/iai/results.py" in merge and "src/iai/utils.py" in merge
    assert "src/iai/train.py" not in merge and "src/iai/figures.py" not in merge
    train = P.code_files("train")
    assert {"src/iai/train.py", "src/iai/learners/parametric.py", "src/iai/params.schema.yaml"} <= set(train)
    assert "src/iai/evaluate.py" not in train


def dvc_outputs(dvc: dict) -> dict[str, str]:
    """Path -> stage name of every output (outs, metrics, plots) of a dvc.yaml."""
    found = {}
    for name, stage in dvc["stages"].items():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                found[entry if isinstance(entry, str) else next(iter(entry))] = name
    return found


def test_dvc_yaml_is_current_and_agrees_with_the_rules(tmp_path):
    check = subprocess.run([sys.executable, "workflow/scripts/dvc_yaml.py", "--check"], cwd=REPO, env=env(),
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    ws = workspace(tmp_path)
    shutil.copy(REPO / "dvc.yaml", ws / "dvc.yaml")
    summary = snakemake(ws, "--summary", "--nolock", params=P.DEFAULT_PARAMS)
    assert summary.returncode == 0, summary.stderr
    rows = [line.split("\t") for line in summary.stdout.strip().splitlines()[1:]]
    rule_of = {row[0]: row[2] for row in rows}  # every output file of every job -> its rule
    dvc = yaml.safe_load((ws / "dvc.yaml").read_text())
    outputs = dvc_outputs(dvc)
    assert set(outputs) == set(rule_of)
    sm = dvc["vars"][0]["sm"]
    for name, stage in dvc["stages"].items():
        cmd = stage["cmd"].replace("${sm}", sm)
        rule, targets = re.fullmatch(r".*--allowed-rules (\w+) -- (.*)", cmd).groups()
        mine = sorted(p for p, s in outputs.items() if s == name)
        assert sorted(targets.split()) == mine, name  # the stage asks Snakemake for exactly its outputs
        assert {rule_of[p] for p in mine} == {rule}, name  # ... from the one rule that makes them


# ---------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The whole pipeline on the tiny params, in a fresh copy; (workspace, seconds, output)."""
    ws = workspace(tmp_path_factory.mktemp("tiny"))
    start = time.perf_counter()
    res = snakemake(ws, "--cores", "2", timeout=600)
    seconds = time.perf_counter() - start
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return ws, seconds


@pytest.mark.slow
def test_full_tiny_run_completes_then_has_nothing_to_do(tiny_run):
    ws, seconds = tiny_run
    assert seconds < 180, f"tiny pipeline took {seconds:.0f} s"
    import pandas as pd
    from iai.analysis.figures import FIGURES

    for path in [P.RESULTS, P.REPORT, P.METRICS, *P.figures(list(FIGURES))]:
        assert (ws / path).is_file(), path

    results = pd.read_csv(ws / "data/results/results.csv")
    assert set(results.learner) == {"bayes", "sgd", "po", "po_once"}
    assert {"wall_time_s", "peak_memory_mb"} <= set(results.metric)  # the cost rows were merged
    assert sorted(results.n_train[results.metric == "mse"].unique()) == [16, 32, 64]
    res = snakemake(ws, "--dry-run")
    assert res.returncode == 0 and "Nothing to be done" in res.stdout, res.stdout


@pytest.mark.slow
def test_workflow_report_builds_offline(tiny_run):
    ws, _ = tiny_run
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
    assert not list((ws / "data/models/linreg").glob("wide*"))
    assert {k: v for k, v in mtimes(ws).items() if k in before} == before  # nothing done was redone
    raw["runs"][-1]["model"]["width"] = 16
    (ws / TINY).write_text(yaml.safe_dump(raw, sort_keys=False))
    res = snakemake(ws, "--cores", "2", "data/results/eval/linreg/wide.csv")
    assert res.returncode == 0, res.stderr[-3000:]
    assert {k: v for k, v in mtimes(ws).items() if k in before} == before
    assert (ws / "data/models/linreg/wide.pt").is_file() and (ws / "data/results/eval/linreg/wide.csv").is_file()
    dry = snakemake(ws, "--dry-run")  # what is left: the merged table, figures and report
    assert job_counts(dry.stdout) == {"merge": 1, "figures": 1, "report": 1, "all": 1}


@pytest.mark.slow
def test_killed_training_is_marked_incomplete_and_resumes(tiny_run, tmp_path):
    ws = copy_run(tiny_run[0], tmp_path / "ws")
    raw = yaml.safe_load((ws / TINY).read_text())
    raw["runs"].append({"family": "linreg", "name": "long", "regime": "parametric", "signal": "obs",
                        "train": {"iterations": 400, "checkpoint_every": 20, "log_every": 20}})
    (ws / TINY).write_text(yaml.safe_dump(raw, sort_keys=False))
    target, resume = "data/models/linreg/long.pt", ws / "data/models/linreg/long.resume.pt"
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
    assert re.search(r"Incomplete files:\s+data/models/linreg/long\.csv", strict.stdout + strict.stderr)
    res = snakemake(ws, "--cores", "1", target)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming linreg/long at iteration" in (ws / "logs/train/linreg/long.log").read_text()
    assert not resume.exists()
    summary = json.loads((ws / "data/models/linreg/long.json").read_text())
    assert summary["iterations"] == 400 and summary["resumed_at"] >= 20


def dvc(ws: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dvc"), *args], cwd=ws, env=env(), capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_dvc_adopts_the_snakemake_run_and_reruns_only_the_changed_stage(tiny_run, tmp_path):
    ws = copy_run(tiny_run[0], tmp_path / "ws")
    assert subprocess.run(["git", "init", "-q"], cwd=ws).returncode == 0
    assert dvc(ws, "init", "-q").returncode == 0
    gen = subprocess.run([sys.executable, "workflow/scripts/dvc_yaml.py", "--params", TINY], cwd=ws, env=env(),
                         capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr
    assert dvc(ws, "commit", "--force", "--quiet").returncode == 0  # what `make reproduce` does after Snakemake
    assert "Data and pipelines are up to date" in dvc(ws, "status").stdout
    raw = yaml.safe_load((ws / TINY).read_text())
    raw["report"] = {"significance": 3.0}  # read by the report stage alone
    (ws / TINY).write_text(yaml.safe_dump(raw, sort_keys=False))
    status = dvc(ws, "status").stdout
    assert re.findall(r"^(\S+):$", status, flags=re.M) == ["report"], status
    repro = dvc(ws, "repro")
    assert repro.returncode == 0, repro.stdout + repro.stderr
    assert re.findall(r"Running stage '([^']+)'", repro.stdout) == ["report"]
    assert "Data and pipelines are up to date" in dvc(ws, "status").stdout
    res = snakemake(ws, "--dry-run")  # the job DVC ran went through Snakemake: it agrees
    assert "Nothing to be done" in res.stdout, res.stdout
