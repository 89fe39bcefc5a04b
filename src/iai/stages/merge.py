"""``iai merge``: every evaluation and cost table -> the per-task table and its checked, sorted summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from iai.core.results import merge, write, write_tasks


def cli_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="per-job tables: per-task Parquet (evaluations) or summary CSV (cost)")
    p.add_argument("--out", default="data/results/results.csv",
                   help="summary table (default: data/results/results.csv)")
    p.add_argument("--tasks", default=None,
                   help="per-task table (default: per_task.parquet beside --out)")


def cli_main(args: argparse.Namespace) -> None:
    summary, per_task = merge(args.inputs)
    tasks_out = Path(args.tasks) if args.tasks else Path(args.out).with_name("per_task.parquet")
    write(summary, args.out)
    write_tasks(per_task, tasks_out)
    print(f"wrote {args.out} ({len(summary)} rows) and {tasks_out} ({len(per_task)} per-task rows) "
          f"from {len(args.inputs)} tables")
