"""``iai generate``: write the fixed evaluation task banks, one file and one manifest per family.

The banks are drawn from the ``bank`` seed stream; meta-training draws fresh tasks from the same
samplers under a different stream, so no evaluation task is ever trained on. Each split is sampled
from its :meth:`~iai.core.tasks.TaskFamily.bank_variant`: the split family itself, except for
families over a finite data pool (image classification), whose banks draw only the images held out
of meta-training (``eval_fraction``), so no evaluation image is ever trained on either.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from iai import __version__
from iai.core.results import VALID_SPLIT
from iai.core.tasks import TaskBatch, TaskFamily, build_family
from iai.core.tasks.bank import save_bank
from iai.params import Params, load_params
from iai.utils import derive_seed, file_sha256, write_summary


def bank_families(splits: dict[str, TaskFamily]) -> dict[str, TaskFamily]:
    """The families a bank's splits are drawn from (:meth:`~iai.core.tasks.TaskFamily.bank_variant`)."""
    return {split: fam.bank_variant() for split, fam in splits.items()}


def sample_bank(params: Params, name: str, splits: dict[str, TaskFamily]) -> dict[str, TaskBatch]:
    """Every split of one family's bank, each from its own named seed stream (and from the split
    family's :meth:`~iai.core.tasks.TaskFamily.bank_variant`)."""
    b = params.banks
    families = bank_families(splits)
    out = {split: fam.sample(b["n_tasks"], b["n_train"], b["n_valid"], derive_seed(params.seed, "bank", name, split))
           for split, fam in families.items()}
    if b.get("valid_tasks", 0):  # validation tasks, drawn like id from their own stream: the claims' gate reads them
        out[VALID_SPLIT] = families["id"].sample(b["valid_tasks"], b["n_train"], b["n_valid"],
                                                 derive_seed(params.seed, "bank", name, VALID_SPLIT))
    return out


def write_bank(params: Params, name: str, out_dir: str | Path) -> Path:
    """Write ``<out_dir>/<name>.pt`` and its manifest ``<name>.json``; returns the bank's path.

    The manifest doubles as the stage summary the report reads (stage, duration, device).
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    family, splits = build_family(params.family(name))  # validates before anything is written
    bank = sample_bank(params, name, splits)
    path = out_dir / f"{name}.pt"
    save_bank(path, bank)
    manifest = {
        "family": name,
        "kind": family.kind,
        "params": family.params(),
        "splits": {s: {"params": fam.params(), "seed": derive_seed(params.seed, "bank", name, s)}
                   for s, fam in bank_families(splits).items()},
        "sizes": dict(params.banks),  # n_tasks, n_train, n_valid and (when set) valid_tasks
        "root_seed": params.seed,
        "params_file": params.path,
        "files": {path.name: {"sha256": file_sha256(path)}},
        "iai_version": __version__,
        "stage": "generate",
        "device": "cpu",  # tasks are always sampled on the CPU, so seeds give the same tasks anywhere
        "duration_s": round(time.perf_counter() - start, 3),
    }
    write_summary(out_dir / f"{name}.json", manifest)  # the duration in <name>.timing.json
    return path


def cli_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", required=True, help="params YAML file (e.g. params/default.yaml)")
    p.add_argument("--family", action="append", help="family name from the params (repeatable; default: all)")
    p.add_argument("--out", default="data/banks", help="output folder (default: data/banks)")


def cli_main(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    names = args.family or list(params.families)
    for name in names:  # every name and split is checked before the first file is written
        build_family(params.family(name))
    for name in names:
        path = write_bank(params, name, args.out)
        print(f"wrote {path} and {path.with_suffix('.json')}")
