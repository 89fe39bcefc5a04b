"""``iai evaluate``: roll one learner (every training seed of it) out on a family's task banks at growing n.

``--learner references`` (:data:`iai.core.plan.ALL_REFERENCES`) evaluates every reference of the params
that applies to the family, one after another in one process, into one table, and ``--learner runs``
(:data:`iai.core.plan.ALL_RUNS`) every learned run of the family (every training seed of each): the workflow's two
jobs per family. A job's fixed cost (Snakemake's dispatch, the process, 3-4 s of imports) was about
6 s, while a run's evaluation computes for 1-20 s: one job per run spent a third of the evaluation
stage starting processes (40 jobs on the default recipe, against 14).

For every split of the bank (in- and out-of-distribution) and every size n in ``evaluate.sizes``,
the learner reads n train points of each task over ceil(n / B) * epochs mini-batch steps, and its
valid metrics are recorded, per task, at log-spaced steps. Every learner evaluated at the same
(family, split) with the same B receives *the same* mini-batches (one seed per (family, split)), so
classical optimizers, the exact Bayes update and the learned learners are compared on identical data
streams, and their per-task numbers pair up.

One pass (the default, ``epochs: 1``, ``schedule: epochs``, every n a multiple of B): the sizes share
one rollout over the largest n. Its first n/B mini-batches are a uniformly random n-subset of the
task's points read once in random order, which is what "a dataset of n points, one pass" means, so
the rows of size n are that rollout's steps 1 .. n/B (half the work of a rollout per size). Otherwise
every size gets its own rollout over the first n points (banks are pre-shuffled).

One-shot learners are run twice: ``context=capped`` reads a random subset of their training context
size in one step (what a one-shot amortizer can do), and ``context=all`` reads all n points in one
step (beyond its training context; skipped above ``evaluate.one_shot_full_max``).

Output: the per-task table (:data:`iai.core.results.TASK_COLUMNS`, Parquet) and a JSON summary.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from iai.core.learners import describe, load_run, run_dir
from iai.core.learners.references import REFERENCE_NAMES, reference_learner
from iai.core.plan import ALL_REFERENCES, ALL_RUNS, family_references, family_runs
from iai.core.results import TASK_COLUMNS, VALID_SPLIT, task_frame, write_tasks
from iai.core.rollout import eval_steps, rollout, steps_for
from iai.core.tasks import TaskBatch, TaskFamily, build_family
from iai.core.tasks.bank import load_bank
from iai.params import EvaluateConfig, Params, load_params
from iai.utils import ConfigError, check_writable, derive_seed, describe_device, resolve_device, write_summary

log = logging.getLogger(__name__)


def _records_to_rows(records: list[dict], **columns) -> list[dict]:
    """Rollout records -> per-task column blocks (one dict of equal-length arrays per record)."""
    out = []
    for r in records:
        values = np.asarray(r["values"], dtype=float)
        out.append({**columns, "step": r["step"], "n_seen": r["n_seen"], "metric": r["metric"],
                    "task": np.arange(len(values)), "value": values})
    return out


def evaluate_split(learner, family: TaskFamily, bank: TaskBatch, batch_size: int, settings: EvaluateConfig,
                   seed: int, device=None) -> list[dict]:
    """Per-task column blocks (without family/split/learner columns) for one learner on one split."""
    blocks = []
    mode = getattr(learner, "mode", "iterative")
    sizes, epochs, schedule, spacing = settings.sizes, settings.epochs, settings.schedule, settings.steps
    common = dict(epochs=epochs, schedule=schedule, seed=seed, task_chunk=settings.task_chunk, device=device)
    if mode == "iterative":
        shared = epochs == 1 and schedule == "epochs" and all(n % batch_size == 0 for n in sizes)
        if shared:  # one rollout over the largest n; size n is its first n/B steps
            n_max = max(sizes)
            wanted = sorted({s for n in sizes for s in eval_steps(steps_for(n, batch_size), spacing)})
            records = rollout(learner, family, bank.head(n_max), batch_size, steps=wanted, **common)
            for n in sizes:
                keep = set(eval_steps(steps_for(n, batch_size), spacing))
                blocks += _records_to_rows([r for r in records if r["step"] in keep], context="all",
                                           batch_size=batch_size, n_train=n)
            return blocks
        for n in sizes:
            records = rollout(learner, family, bank.head(n), batch_size, steps=spacing, **common)
            blocks += _records_to_rows(records, context="all", batch_size=batch_size, n_train=n)
        return blocks
    cap = learner.context_size
    done: dict[int, list[dict]] = {}  # points read -> records: capped at n >= cap reads the same points as n = cap
    for n in sizes:
        runs = [("capped", min(n, cap))]
        if settings.one_shot_full_max is None or n <= settings.one_shot_full_max:
            runs.append(("all", n))
        for context, b in runs:
            if b not in done:
                done[b] = rollout(learner, family, bank.head(b), b, steps=spacing, **common)
            blocks += _records_to_rows(done[b], context=context, batch_size=b, n_train=n)
    return blocks


def evaluate_learner(params: Params, family_name: str, learner_name: str, banks_dir: str | Path = "data/banks",
                     models_dir: str | Path = "data/models", device: str = "cpu") -> pd.DataFrame:
    """The per-task rows of one learner (every training seed of a learned run; references: seed 0) on
    every split of one family's bank; ``learner_name='references'``: of every applicable reference,
    ``'runs'``: of every learned run of the family, one after another on the same family and bank."""
    if learner_name == ALL_RUNS:
        runs = family_runs(params, family_name)
        if not runs:
            raise ConfigError(f"family {family_name!r} has no runs in the params' runs: nothing to evaluate")
    else:
        runs = [] if learner_name == ALL_REFERENCES or learner_name in REFERENCE_NAMES else [learner_name]
    for name in runs:  # every seed's checkpoint of every run, before any compute
        run = params.run(family_name, name)
        missing = [str(p) for p in (run_dir(Path(models_dir), family_name, name) / f"seed{s}.pt"
                                    for s in range(run.seeds)) if not p.is_file()]
        if missing:
            raise ConfigError(f"run {run.id} has {run.seeds} training seed(s); missing checkpoint(s) {missing}: "
                              f"train them first (`iai train --family {family_name} --learner {name}`)")
    spec = params.family(family_name)
    family, split_families = build_family(spec)
    bank = load_bank(Path(banks_dir) / f"{family_name}.pt")
    missing = sorted(set(split_families) - set(bank))
    if missing:
        raise ConfigError(f"{banks_dir}/{family_name}.pt: bank lacks split(s) {missing}; rerun `iai generate`")
    if VALID_SPLIT in bank:  # validation tasks: drawn like id, read by the claims' competence gate only
        split_families = {**split_families, VALID_SPLIT: split_families["id"]}
    dev = resolve_device(device)
    names = family_references(params, family) if learner_name == ALL_REFERENCES else runs or [learner_name]
    blocks = []
    for name in names:
        is_reference = name in REFERENCE_NAMES
        for seed in [0] if is_reference else range(params.run(family_name, name).seeds):
            learned = None if is_reference else load_run(params, family_name, name, Path(models_dir), family, dev, seed)
            for split, split_family in split_families.items():
                if is_reference:
                    learner = reference_learner(name, split_family, family_name, params.references,
                                                derive_seed(params.seed, "ref", name))
                    batch_size = params.raw["train"]["batch_size"]
                else:
                    learner, batch_size = learned, learned.batch_size
                log.info("evaluating %s/%s (seed %d) on split %s", family_name, name, seed, split)
                stream = derive_seed(params.seed, "eval", family_name, split)
                info = {"family": family_name, "kind": family.kind, "dim": family.dim, "split": split,
                        **describe(learner), "seed": seed}
                blocks += [{**info, **b} for b in evaluate_split(learner, split_family, bank[split], batch_size,
                                                                params.evaluate, stream, dev)]
    return task_frame(_blocks_to_frame(blocks))


def _blocks_to_frame(blocks: list[dict]) -> pd.DataFrame:
    """Column blocks (scalars plus the equal-length ``task`` and ``value`` arrays) -> one frame.

    One small frame of the blocks' scalars, repeated row-wise, then the arrays: a frame per block
    (pandas broadcasting each block's scalars) took most of a cheap learner's evaluation job.
    """
    if not blocks:
        return pd.DataFrame(columns=TASK_COLUMNS)
    arrays = ("task", "value")
    scalars = pd.DataFrame([{c: b[c] for c in TASK_COLUMNS if c not in arrays} for b in blocks])
    df = scalars.loc[scalars.index.repeat([len(b["value"]) for b in blocks])].reset_index(drop=True)
    for c in arrays:
        df[c] = np.concatenate([b[c] for b in blocks])
    return df[TASK_COLUMNS]


def cli_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", required=True, help="params YAML file")
    p.add_argument("--family", required=True, help="family name from the params")
    p.add_argument("--learner", required=True,
                   help=f"a reference ({', '.join(REFERENCE_NAMES)}), '{ALL_REFERENCES}' (every reference of the "
                        f"params that applies to the family, into one table), a run name from the params' runs, or "
                        f"'{ALL_RUNS}' (every run of the family, into one table)")
    p.add_argument("--banks", default="data/banks", help="task bank folder (default: data/banks)")
    p.add_argument("--models", default="data/models", help="checkpoint folder (default: data/models)")
    p.add_argument("--device", default=None, help="auto, cpu or cuda (default: the params' device)")
    p.add_argument("--out", required=True, help="per-task rows (Parquet); a summary JSON is written beside it")


def cli_main(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    start = time.perf_counter()
    device = args.device or params.device
    out = Path(args.out)
    check_writable(out.parent)  # before any compute
    df = evaluate_learner(params, args.family, args.learner, args.banks, args.models, device)
    write_tasks(df, out)
    write_summary(out.with_suffix(".json"), {
        "stage": "evaluate", "family": args.family, "learner": args.learner, "rows": len(df),
        "seeds": int(df["seed"].nunique()), "device": str(resolve_device(device)),
        "device_name": describe_device(resolve_device(device)), "duration_s": round(time.perf_counter() - start, 3)})
    print(f"wrote {out} ({len(df)} per-task rows)")
