"""The tiny recipe through Snakemake's SLURM executor on a real one-node SLURM cluster (tests/helpers/slurm.py),
with the repository's profile (workflow/profiles/slurm) and a test overlay for what a cluster sets: the
partition, no account, memory that fits this node, cpus no more than it has, quick status checks.

It proves that every job goes through sbatch and completes; that each gets the cpus, memory and time
limit its rule asks for in the profile, and a GPU rule `--gpus`; that each job's SLURM log is where
the README says; that a failing job is reported failed with its outputs removed and its log kept; and
that the rerun after the fix completes the rest alone. Where SLURM cannot be installed or started, it
fails with one line saying why under CI (CI=true), and is skipped with that line elsewhere.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers.slurm import Cluster, SlurmUnavailable
from test_workflow import BIN, REPO, TINY, env, workspace

pytestmark = pytest.mark.slow
PROFILE = REPO / "workflow/profiles/slurm/config.yaml"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        with Cluster(tmp_path_factory.mktemp("slurm")) as c:
            yield c
    except SlurmUnavailable as err:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"no SLURM cluster: {err}")
    assert not c.daemons(), f"SLURM daemons still running after stop: {c.daemons()}"


def overlay(ws: Path, cluster: Cluster) -> tuple[Path, dict]:
    """The repository's SLURM profile with what this test cluster needs (a cluster's own settings)."""
    profile = yaml.safe_load(PROFILE.read_text())
    profile.update({"slurm-no-account": True, "slurm-status-command": "squeue", "slurm-keep-successful-logs": True,
                    "slurm-init-seconds-before-status-checks": 1, "seconds-between-status-checks": 2,
                    "latency-wait": 5})
    profile["default-resources"]["slurm_partition"] = "debug"
    fits = cluster.memory_mb // 4  # two jobs side by side, each well inside the node
    for rule, res in profile["set-resources"].items():
        res["mem_mb"] = min(res.get("mem_mb", fits), fits)
    profile["set-threads"] = {rule: min(n, cluster.cpus) for rule, n in profile["set-threads"].items()}
    folder = ws / "test-profile"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder, profile


def snakemake(ws: Path, cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "snakemake"), "--config", f"params={TINY}", *args], cwd=ws,
                          env=cluster.client_env(env()), capture_output=True, text=True, timeout=900)


def minutes(limit: str) -> int:
    """SLURM's TimeLimit ([D-]HH:MM:SS) in minutes."""
    days, _, clock = limit.rpartition("-")
    h, m, s = (int(x) for x in clock.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + (s > 0)


def megabytes(memory: str) -> float:
    units = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 ** 2}
    return float(memory[:-1]) * units[memory[-1]] if memory[-1] in units else float(memory)


def rule_of(job: dict) -> str:
    return re.match(r"rule_(\w+?)(?:_wildcards_.*)?$", job["Comment"]).group(1)


def test_the_tiny_recipe_runs_through_slurm_and_a_failed_job_reruns_alone(cluster, tmp_path):
    ws = workspace(tmp_path / "ws")
    profile_dir, profile = overlay(ws, cluster)
    raw = yaml.safe_load((ws / TINY).read_text())
    raw["runs"].append({"family": "linreg", "name": "wide", "regime": "parametric", "signal": "both",
                        "model": {"width": 15}})  # passes the schema, fails at build: width % heads != 0
    (ws / TINY).write_text(yaml.safe_dump(raw, sort_keys=False))
    run = ["--workflow-profile", str(profile_dir), "--keep-going"]

    res = snakemake(ws, cluster, *run)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-3000:]
    first = cluster.jobs()
    failed = [j for j in first if j["JobState"] == "FAILED"]
    assert failed and {rule_of(j) for j in failed} == {"train_run"}, out[-3000:]
    assert "Error in rule train_run" in out and "model.width: expected a multiple of model.heads" in \
        (ws / "logs/train/linreg/wide.log").read_text()
    assert not list((ws / "data/models/linreg").glob("wide/*.pt"))  # its outputs removed
    for job in failed:  # the failed job's SLURM log is kept
        assert Path(job["StdOut"]).is_file() and ".snakemake/slurm_logs/rule_train_run/" in job["StdOut"]
    done = {p: p.stat().st_mtime_ns for p in (ws / "data").rglob("*") if p.is_file()}

    raw["runs"][-1]["model"]["width"] = 16
    (ws / TINY).write_text(yaml.safe_dump(raw, sort_keys=False))
    res = snakemake(ws, cluster, *run)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert (ws / "reports/index.html").is_file() and (ws / "data/models/linreg/wide/seed1.pt").is_file()
    second = [j for j in cluster.jobs() if j["JobId"] not in {k["JobId"] for k in first}]
    # the rerun: the fixed training and what reads it; what was done stays done
    assert sorted(rule_of(j) for j in second) == ["evaluate", "figures", "merge", "report", "train_run"], second
    assert all(p.stat().st_mtime_ns == t for p, t in done.items() if "wide" not in str(p) and
               "eval/linreg/runs" not in str(p) and "results/" not in str(p))

    # every job went through sbatch and completed (but the failed training), with its rule's resources
    jobs = [j for j in first + second if j not in failed]
    assert jobs and all(j["JobState"] == "COMPLETED" for j in jobs), [(j["JobId"], j["JobState"]) for j in jobs]
    default = profile["default-resources"]
    for job in jobs:
        rule = rule_of(job)
        asked = {**default, **profile["set-resources"].get(rule, {})}
        assert int(job["NumCPUs"]) == profile["set-threads"].get(rule, 1), (rule, job["NumCPUs"])
        assert minutes(job["TimeLimit"]) == asked["runtime"], (rule, job["TimeLimit"])
        assert megabytes(job["MinMemoryNode"]) >= asked["mem_mb"], (rule, job["MinMemoryNode"])
        gpu = "gpu:1" in job.get("TresPerJob", "") + job.get("TresPerNode", "")
        assert gpu == (rule in ("train", "train_run")), (rule, job.get("TresPerJob"))
        assert Path(job["StdOut"]).is_file(), job["StdOut"]  # .snakemake/slurm_logs/rule_R/WILDCARDS/ID.log
        assert f".snakemake/slurm_logs/rule_{rule}/" in job["StdOut"]
    # nothing left behind: no job queued or running, no job step, no Snakemake lock
    assert not subprocess.run(["squeue", "--noheader", "--states=PENDING,RUNNING"], env=cluster.env,
                              capture_output=True, text=True).stdout.strip()
    assert subprocess.run(["pgrep", "-f", "slurmstepd"], capture_output=True).returncode == 1
    assert not list((ws / ".snakemake/locks").glob("*"))
