"""``iai merge``: every evaluation and cost table -> one checked, sorted results table."""

from __future__ import annotations

import argparse

from iai.core.results import merge, write


def cli_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="per-job result tables (CSV)")
    p.add_argument("--out", default="data/results/results.csv", help="merged table (default: data/results/results.csv)")


def cli_main(args: argparse.Namespace) -> None:
    df = merge(args.inputs)
    write(df, args.out)
    print(f"wrote {args.out}: {len(df)} rows from {len(args.inputs)} tables")
