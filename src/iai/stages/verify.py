"""Check the pipeline's artifacts before anything reads or records them: ``iai verify PATH ...``.

Every artifact a stage writes carries a hash of its content: checkpoints, banks and resume files
(``.pt``, :func:`iai.utils.torch_save`), per-task tables (``.parquet``, :func:`iai.core.results.write_tasks`),
and a bank's manifest records its file's sha256. A file changed after it was written (a flipped bit,
a hand edit, a bad copy) fails that check. Snakemake judges outputs by their timestamps and DVC
records whatever the workspace holds, so without this check a corrupted file is neither regenerated
nor refused: ``dvc repro`` and ``dvc commit`` would record it as the truth. The pipeline's commands
(`make reproduce`, each dvc.yaml stage) therefore run this first and stop, before any job, with one
line per corrupted file naming it, the hashes, and how to restore it (``dvc checkout``) or
regenerate it (delete it and rerun).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from iai.utils import ConfigError, NoContentHash, file_sha256, torch_load


def artifacts(paths: list[str | Path]) -> list[Path]:
    """The files under ``paths`` (files or folders; missing ones skipped: not made yet) that carry a hash."""
    out = []
    for path in map(Path, paths):
        if path.is_file():
            out.append(path)
        elif path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".pt", ".parquet", ".json"))
    return [p for p in out if p.suffix in (".pt", ".parquet") or is_bank_manifest(p)]


def is_bank_manifest(path: Path) -> bool:
    return path.suffix == ".json" and path.with_suffix(".pt").is_file() and path.parent.name == "banks"


class Corrupted(ConfigError):
    def __init__(self, path: Path, message: str):
        super().__init__(message)
        self.path = path


def check(path: Path) -> None:
    """Raise :class:`Corrupted` (naming the bad file) when ``path``'s content no longer matches the hash
    written with it, :class:`NoContentHash` when it carries none."""
    try:
        if path.suffix == ".pt":
            torch_load(path)
        elif path.suffix == ".parquet":
            from iai.core.results import read_tasks  # pandas and pyarrow load only where a table is checked

            read_tasks(path)
    except NoContentHash:
        raise
    except ConfigError as err:
        raise Corrupted(path, str(err).split("; ")[0]) from err
    if path.suffix == ".json":
        try:
            files = json.loads(path.read_text()).get("files", {})
        except (json.JSONDecodeError, AttributeError) as err:
            raise Corrupted(path, f"{path}: not a readable bank manifest ({err})") from err
        for name, entry in files.items():
            target = path.parent / name
            if target.is_file() and file_sha256(target) != entry.get("sha256"):
                raise Corrupted(target, f"{target}: corrupted: its sha256 differs from the one {path} records")


def verify(paths: list[str | Path]) -> tuple[list[str], list[str]]:
    """``(errors, warnings)``: one line per corrupted artifact under ``paths``, and one per file that
    carries no content hash (written by an older version: not checked; the pipeline rewrites it when
    its code changed)."""
    bad, unchecked = {}, []
    for path in artifacts(paths):
        try:
            check(path)
        except NoContentHash as err:
            unchecked.append(str(err))
        except Corrupted as err:
            owner = next((str(p) for p in map(Path, paths) if p == err.path or p in err.path.parents), str(err.path))
            bad.setdefault(err.path, f"{err}; restore the recorded copy with `dvc checkout --force {owner}`, "
                                     f"or delete {err.path} and rerun to regenerate it")
    return list(bad.values()), unchecked


def cli_arguments(p) -> None:
    p.add_argument("paths", nargs="+", help="artifact files or folders (data/banks, data/models, data/results)")


def cli_main(args) -> None:
    bad, unchecked = verify(args.paths)
    for line in unchecked:
        print(f"iai verify: warning: {line}; not checked", file=sys.stderr)
    for line in bad:
        print(f"iai verify: {line}", file=sys.stderr)
    if bad:
        raise ConfigError(f"{len(bad)} corrupted artifact(s) under {' '.join(args.paths)}; nothing was run or recorded")
    print(f"iai verify: {len(artifacts(args.paths))} artifact(s) intact under {' '.join(args.paths)}")
