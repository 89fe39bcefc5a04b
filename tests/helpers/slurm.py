"""A one-node SLURM cluster on this machine, for the tests: munged, slurmctld and slurmd from Debian's
packages (`slurmctld slurmd slurm-client munge`), configured and started in a temporary folder, and
stopped with nothing left behind.

The node is this machine (its cores, 80% of its memory) with one fake GPU (a counted GRES backed by
/dev/null), so that a job asking for `--gpus=1` is scheduled and its request can be read back. No
accounting daemon: job status comes from `squeue`, and MinJobAge keeps finished jobs listed for an
hour, so that their state and resources can be read after they end (`jobs`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
COMMANDS = ["munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scontrol", "sinfo"]


class SlurmUnavailable(RuntimeError):
    """SLURM cannot run here (one line: why)."""


def ensure_installed(timeout: float = 900) -> None:
    """Install the packages with apt-get where a command is missing (as root), else raise SlurmUnavailable."""
    missing = [c for c in COMMANDS if not _which(c)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SlurmUnavailable(f"{', '.join(missing)} not found, and apt-get cannot install {' '.join(PACKAGES)} "
                               "here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["no output"])[-1]
            raise SlurmUnavailable(f"`{' '.join(cmd)}` failed: {last}")
    missing = [c for c in COMMANDS if not _which(c)]
    if missing:
        raise SlurmUnavailable(f"{', '.join(missing)} still not found after installing {' '.join(PACKAGES)}")


def _which(cmd: str) -> str | None:
    return shutil.which(cmd) or shutil.which(cmd, path="/usr/sbin:/sbin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise SlurmUnavailable("cannot read MemTotal from /proc/meminfo")


class Cluster:
    """``with Cluster(folder) as cluster:`` a running one-node cluster; ``cluster.env`` points the SLURM
    commands at it (SLURM_CONF); on exit every daemon is stopped (and checked gone)."""

    def __init__(self, root: Path, start_timeout: float = 60):
        self.root = Path(root)
        self.node = socket.gethostname().split(".")[0]
        self.cpus = os.cpu_count() or 1
        self.memory_mb = int(_memory_mb() * 0.8)
        self.start_timeout = start_timeout
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.pids: dict[str, Path] = {}

    def __enter__(self) -> "Cluster":
        ensure_installed()
        r = self.root
        for sub in ("state", "spool", "log"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        key = r / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        sock = r / "munge.sock"
        self.pids = {"munged": r / "munged.pid", "slurmctld": r / "slurmctld.pid", "slurmd": r / "slurmd.pid"}
        self.conf.write_text("\n".join([
            "ClusterName=iaitest", f"SlurmctldHost={self.node}",
            f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
            "AuthType=auth/munge", f"AuthInfo=socket={sock}", "CredType=cred/munge",
            "SlurmUser=root", "SlurmdUser=root",
            f"StateSaveLocation={r / 'state'}", f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={self.pids['slurmctld']}", f"SlurmdPidFile={self.pids['slurmd']}",
            f"SlurmctldLogFile={r / 'log/slurmctld.log'}", f"SlurmdLogFile={r / 'log/slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory",
            "MinJobAge=3600", "ReturnToService=2", "MpiDefault=none", "SchedulerType=sched/backfill",
            "GresTypes=gpu",
            f"NodeName={self.node} CPUs={self.cpus} RealMemory={self.memory_mb} Gres=gpu:1 State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""]))
        (r / "gres.conf").write_text("Name=gpu Count=1 File=/dev/null\n")
        # The jobstep executor (snakemake-executor-plugin-slurm-jobstep) runs `srun` inside each job with
        # every SLURM_* variable but the allocation's removed, SLURM_CONF too: a cluster whose config is
        # not at /etc/slurm/slurm.conf (this one, in a temporary folder) needs srun to be told again.
        (r / "bin").mkdir(exist_ok=True)
        srun = r / "bin/srun"
        srun.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec {_which("srun")} "$@"\n')
        srun.chmod(0o755)
        try:
            self._run([_which("munged"), "--force", f"--socket={sock}", f"--key-file={key}",
                       f"--log-file={r / 'log/munged.log'}", f"--pid-file={self.pids['munged']}",
                       f"--seed-file={r / 'munged.seed'}"])
            self._run([_which("slurmctld"), "-f", str(self.conf)])
            self._run([_which("slurmd"), "-f", str(self.conf), "-N", self.node])
            self._wait_idle()
        except BaseException:
            self.stop()
            raise
        return self

    def client_env(self, base: dict) -> dict:
        """``base`` with the SLURM commands pointed at this cluster (for Snakemake and its jobs)."""
        return {**base, "SLURM_CONF": str(self.conf), "PATH": f"{self.root / 'bin'}{os.pathsep}{base.get('PATH', '')}"}

    def _run(self, cmd: list[str]) -> None:
        res = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise SlurmUnavailable(f"{Path(cmd[0]).name} did not start: {(res.stderr or res.stdout).strip()}")

    def _wait_idle(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        state = ""
        while time.monotonic() < deadline:
            res = subprocess.run(["sinfo", "--noheader", "-o", "%T"], env=self.env, capture_output=True, text=True,
                                 timeout=30)
            state = res.stdout.strip()
            if state == "idle":
                return
            time.sleep(0.5)
        log = (self.root / "log/slurmctld.log").read_text().strip().splitlines()[-1:]
        raise SlurmUnavailable(f"the node is {state or 'unknown'}, not idle, {self.start_timeout:g} s after start "
                               f"({log[0] if log else 'no slurmctld log'})")

    def jobs(self) -> list[dict]:
        """Every job the cluster has seen: `scontrol show job` as one dict per job."""
        res = subprocess.run(["scontrol", "show", "job", "--oneliner"], env=self.env, capture_output=True, text=True,
                             timeout=60)
        out = []
        for line in res.stdout.splitlines():
            fields = {}
            for part in line.split():
                if "=" in part:
                    k, v = part.split("=", 1)
                    fields[k] = v
            if "JobId" in fields:
                out.append(fields)
        return out

    def daemons(self) -> list[int]:
        """The pids of this cluster's daemons still alive (a zombie, ended but not yet reaped, is not)."""
        alive = []
        for pid_file in self.pids.values():
            try:
                pid = int(pid_file.read_text().strip())
                status = Path(f"/proc/{pid}/status").read_text()
            except (OSError, ValueError):
                continue
            if "\nState:\tZ" not in status:
                alive.append(pid)
        return alive

    def stop(self, timeout: float = 30) -> None:
        for name in ("slurmd", "slurmctld", "munged"):
            try:
                os.kill(int(self.pids[name].read_text().strip()), signal.SIGTERM)
            except (OSError, ValueError, KeyError):
                pass
        deadline = time.monotonic() + timeout
        while self.daemons() and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in self.daemons():
            os.kill(pid, signal.SIGKILL)

    def __exit__(self, *exc) -> None:
        self.stop()
