"""``iai evaluate``: roll one learner out on a family's task banks at growing dataset sizes.

For every split of the bank (in- and out-of-distribution) and every size n in ``evaluate.sizes``,
the learner reads the first n train points of each task (banks are pre-shuffled) over
ceil(n / B) * epochs mini-batch steps, and its valid metrics are recorded at log-spaced steps.
Every learner evaluated at the same (family, split, n) with the same B receives *the same*
mini-batches (one seed per (family, split, n)), so classical optimizers, the exact Bayes update and
the learned learners are compared on identical data streams.

One-shot learners are run twice: ``context=capped`` reads a random subset of their training context
size in one step (what a one-shot amortizer can do), and ``context=all`` reads all n points in one
step (beyond its training context; skipped above ``evaluate.one_shot_full_max``).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd

from iai.params import Params, load_params
from iai.core.learners.references import REFERENCE_NAMES, applies, reference_learner
from iai.core.results import COLUMNS, to_frame, write
from iai.core.learners import describe, load_run
from iai.core.rollout import rollout
from iai.core.tasks import TaskBatch, TaskFamily, build_family
from iai.core.tasks.bank import load_bank
from iai.utils import ConfigError, derive_seed, describe_device, resolve_device, write_json

log = logging.getLogger(__name__)


def evaluation_jobs(params: Params) -> list[tuple[str, str]]:
    """Every (family, learner) pair the params ask to evaluate: applicable references, then runs."""
    jobs = []
    for name, spec in params.families.items():
        family, _ = build_family(spec)
        jobs += [(name, ref) for ref in params.references["learners"] if applies(ref, family)]
        jobs += [(name, run.name) for run in params.runs if run.family == name]
    return jobs


def evaluate_split(learner, family: TaskFamily, bank: TaskBatch, sizes: list[int], batch_size: int,
                   settings: dict, seed_of) -> list[dict]:
    """Rows (without family/split columns) for one learner on one split at every size."""
    rows = []
    mode = getattr(learner, "mode", "iterative")
    for n in sizes:
        tasks, seed = bank.head(n), seed_of(n)
        runs = []  # (context, mini-batch size, tasks)
        if mode == "iterative":
            runs.append(("all", batch_size, tasks))
        else:
            cap = learner.context_size
            runs.append(("capped", min(n, cap), tasks.head(min(n, cap))))
            if n <= settings.get("one_shot_full_max", 1 << 30):
                runs.append(("all", n, tasks))
        for context, b, part in runs:
            records = rollout(learner, family, part, b, epochs=settings.get("epochs", 1),
                              schedule=settings.get("schedule", "epochs"), steps=settings.get("steps", "log"),
                              seed=seed, task_chunk=settings.get("task_chunk"), device=settings.get("device"))
            for r in records:
                rows.append({**r, "context": context, "batch_size": b, "n_train": n, "seed": seed})
    return rows


def evaluate_learner(params: Params, family_name: str, learner_name: str, banks_dir: str | Path = "data/banks",
                     models_dir: str | Path = "data/models", device: str = "cpu") -> pd.DataFrame:
    """The results-table rows of one learner on every split of one family's bank."""
    spec = params.family(family_name)
    family, split_families = build_family(spec)
    bank = load_bank(Path(banks_dir) / f"{family_name}.pt")
    missing = sorted(set(split_families) - set(bank))
    if missing:
        raise ConfigError(f"{banks_dir}/{family_name}.pt: bank lacks split(s) {missing}; rerun `iai generate`")
    dev = resolve_device(device)
    settings = {**params.evaluate, "device": dev}
    is_reference = learner_name in REFERENCE_NAMES
    learned = None if is_reference else load_run(params, family_name, learner_name, Path(models_dir), family, dev)
    rows = []
    for split, split_family in split_families.items():
        if is_reference:
            learner = reference_learner(learner_name, split_family, family_name, params.references,
                                        derive_seed(params.seed, "ref", learner_name))
            batch_size = params.raw["train"]["batch_size"]
        else:
            learner, batch_size = learned, learned.batch_size

        def seed_of(n: int, split=split) -> int:
            return derive_seed(params.seed, "eval", family_name, split, n)

        log.info("evaluating %s/%s on split %s", family_name, learner_name, split)
        split_rows = evaluate_split(learner, split_family, bank[split], params.evaluate["sizes"],
                                    batch_size, settings, seed_of)
        info = {"family": family_name, "kind": family.kind, "dim": family.dim, "split": split, **describe(learner)}
        rows += [{**info, **r} for r in split_rows]
    return to_frame([{c: r[c] for c in COLUMNS} for r in rows])


def cli_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", required=True, help="params YAML file")
    p.add_argument("--family", required=True, help="family name from the params")
    p.add_argument("--learner", required=True,
                   help=f"a reference ({', '.join(REFERENCE_NAMES)}) or a run name from the params' runs")
    p.add_argument("--banks", default="data/banks", help="task bank folder (default: data/banks)")
    p.add_argument("--models", default="data/models", help="checkpoint folder (default: data/models)")
    p.add_argument("--device", default=None, help="auto, cpu or cuda (default: the params' device)")
    p.add_argument("--out", required=True, help="results rows (CSV); a summary JSON is written beside it")


def cli_main(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    start = time.perf_counter()
    device = args.device or params.device
    df = evaluate_learner(params, args.family, args.learner, args.banks, args.models, device)
    out = Path(args.out)
    write(df, out)
    write_json(out.with_suffix(".json"), {
        "stage": "evaluate", "family": args.family, "learner": args.learner, "rows": len(df),
        "device": str(resolve_device(device)),
        "device_name": describe_device(resolve_device(device)), "duration_s": round(time.perf_counter() - start, 3)})
    print(f"wrote {out} ({len(df)} rows)")
