"""The ``iai`` command: one subcommand per pipeline stage, each a thin shell over a library function.

Every stage module provides ``cli_arguments(parser)`` and ``cli_main(args)``; this file only
dispatches, and turns :class:`iai.utils.ConfigError` into one clear line and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS = {
    "generate": ("iai.stages.generate", "write the fixed evaluation task banks (in- and out-of-distribution)"),
    "tune-lr": ("iai.stages.tune", "choose the SGD/Adam (and averaged) learning rates from a grid on separate tasks"),
    "train": ("iai.stages.train", "greedy meta-training of one learned learner"),
    "evaluate": ("iai.stages.evaluate", "roll every learner out at growing dataset sizes -> results rows"),
    "merge": ("iai.stages.merge", "merge evaluation rows into the results table"),
    "figures": ("iai.analysis.figures", "draw the figures from the results table"),
    "report": ("iai.analysis.report", "write reports/index.html and reports/metrics.json"),
    "report-doc": ("iai.analysis.results_doc", "write docs/results.md again from reports/metrics.json"),
    "bench": ("iai.stages.bench", "measure wall time and peak memory of iterative vs one-shot learners"),
    "verify": ("iai.stages.verify", "check that every artifact still matches the content hash written with it"),
    "pull": ("iai.stages.pull", "dvc pull that checks what it downloads: only good files are checked out"),
    "data": ("iai.stages.data", "download MNIST / Fashion-MNIST IDX files for the image_classification family"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (torch, pandas and matplotlib load slowly)."""
    parser = argparse.ArgumentParser(
        prog="iai",
        description="Iterative amortized inference: task banks, learners, meta-training, evaluation, report.",
        epilog="Run `iai COMMAND --help` for a command's options. The pipeline runs them through "
               "Snakemake (`snakemake --cores all`) or DVC (`dvc repro`).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        if name != command:
            sub.add_parser(name, help=help_text)
            continue
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.cli_arguments(p)
        p.set_defaults(_main=mod.cli_main)
    return parser


def main(argv: list[str] | None = None) -> int:
    from iai.utils import ConfigError

    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args._main(args)
    except ConfigError as err:
        print(f"iai {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"iai {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
