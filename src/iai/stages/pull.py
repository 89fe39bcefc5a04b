"""``iai pull``: ``dvc pull`` that checks what it downloads: fetch, verify, then check out only good files.

DVC does not check the objects it downloads unless the remote is configured to (``verify``), and then a
single bad object fails the checkout of its whole directory. Here every object that ``dvc.lock``
records is fetched into the cache (``dvc fetch``), hashed, and compared with its name (its md5):

- every output whose objects are all good is checked out by ``dvc checkout``;
- in an output with a bad object, the good files are copied from the cache into the workspace
  (atomically, each where it is missing or differs), the bad one is removed from the cache and left
  out: the workspace's own copy of that file, if any, stays as it was;
- each bad file (or one missing from the remote) is one line naming it, with the expected and the
  found hash, and the command fails. Outputs that ``dvc.yaml`` keeps out of the cache are in git.

``make pull`` runs this, then ``make adopt``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import yaml

from iai.utils import ConfigError, atomic_path


def cli_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--remote", "-r", default=None, help="the DVC remote to fetch from (default: the default remote)")
    p.add_argument("--lock", default="dvc.lock", help="the lock file whose outputs to fetch (default: dvc.lock)")


def md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dvc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["dvc", *args], capture_output=True, text=True)


def read_yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read it ({err})") from err


def recorded_outputs(lock: Path, pipeline: Path) -> dict[str, str]:
    """Every cached output the lock file records: path -> md5 (a directory's ends in ``.dir``); not the
    outputs that ``dvc.yaml`` keeps out of the cache (``cache: false``: they are in git)."""
    uncached = {path for stage in read_yaml(pipeline).get("stages", {}).values()
                for kind in ("outs", "metrics", "plots") for entry in stage.get(kind, []) if isinstance(entry, dict)
                for path, opts in entry.items() if isinstance(opts, dict) and opts.get("cache") is False}
    return {out["path"]: out["md5"] for stage in read_yaml(lock).get("stages", {}).values()
            for out in stage.get("outs", []) if out.get("md5") and out["path"] not in uncached}


def entries(cache: Path, path: str, digest: str) -> list[tuple[str, str]] | None:
    """(workspace path, md5) of each file of an output; None where its listing is missing or unreadable."""
    if not digest.endswith(".dir"):
        return [(path, digest)]
    listing = object_path(cache, digest)
    try:
        return [(f"{path}/{e['relpath']}", e["md5"]) for e in json.loads(listing.read_text())]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def object_path(cache: Path, digest: str) -> Path:
    return cache / "files" / "md5" / digest[:2] / digest[2:]


def check_out(cache: Path, files: list[tuple[str, str]]) -> int:
    """Copy each good file from the cache where the workspace's copy is missing or differs."""
    copied = 0
    for path, digest in files:
        target = Path(path)
        if target.is_file() and md5(target) == digest:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            shutil.copyfile(object_path(cache, digest), tmp)
        copied += 1
    return copied


def cli_main(args: argparse.Namespace) -> None:
    fetch = dvc("fetch", *(["--remote", args.remote] if args.remote else []))
    # a remote that lacks some objects fails the fetch, and each is named below; one that gave nothing is one line
    fetch_error = (f"dvc fetch failed: {((fetch.stderr or fetch.stdout).strip().splitlines() or ['no output'])[-1]}"
                   if fetch.returncode != 0 else None)
    where = dvc("cache", "dir")
    cache = Path(where.stdout.strip() if where.returncode == 0 else ".dvc/cache")
    good_outputs, bad = [], []
    partial: dict[str, list[tuple[str, str]]] = {}
    for path, digest in recorded_outputs(Path(args.lock), Path(args.lock).with_name("dvc.yaml")).items():
        files = entries(cache, path, digest)
        if files is None:  # DVC keeps no listing of a directory it could not fetch whole
            bad.append((path, f"not fetched ({fetch_error})" if fetch_error else
                        f"its listing (md5 {digest}) is unreadable"))
            continue
        ok = []
        for file, want in files:
            obj = object_path(cache, want)
            found = md5(obj) if obj.is_file() else None
            if found == want:
                ok.append((file, want))
            elif found is None:
                bad.append((file, f"not in the remote (md5 {want})"))
            else:
                bad.append((file, f"corrupted in the remote (md5 expected {want}, found {found})"))
                os.chmod(obj, 0o644)
                obj.unlink()  # fetched again next time, rather than trusted
        if len(ok) == len(files):
            good_outputs.append(path)
        else:
            partial[path] = ok
    if fetch_error and not good_outputs and not any(partial.values()):
        raise ConfigError(fetch_error)
    if good_outputs:
        out = dvc("checkout", *good_outputs)
        if out.returncode != 0:
            raise ConfigError(f"dvc checkout failed: {(out.stderr or out.stdout).strip().splitlines()[-1]}")
    copied = sum(check_out(cache, ok) for ok in partial.values())
    print(f"iai pull: {len(good_outputs)} output(s) checked out" +
          (f", {copied} good file(s) of {len(partial)} other(s) copied" if partial else ""))
    if bad:
        for file, why in bad:
            print(f"iai pull: {file}: {why}: not checked out; the workspace's copy is left as it was "
                  "(push a good copy, or regenerate it: make reproduce)")
        raise ConfigError(f"{len(bad)} file(s) missing or corrupted in the remote (above)")
