"""`igft` command line. Each subcommand lives in its own module here and only wraps library functions.

A module in COMMAND_MODULES defines `register(subparsers)`, which adds its parser(s) and sets
`func=callable(args) -> int` as the default.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from igft import __version__
from igft.errors import IgftError

COMMAND_MODULES = [
    "igft.cli.label",      # igft label
    "igft.cli.evaluate",   # igft evaluate
    "igft.cli.optimize",   # igft optimize, igft paper-runs, igft hyperband-schedule
    "igft.cli.finetune",   # igft finetune, igft generate, igft score
    "igft.cli.classify",   # igft classify ...
    "igft.cli.demo",       # igft demo
]

logger = logging.getLogger("igft")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="igft", description="Intent-Guided Fine-Tuning for customer-support LLMs.")
    parser.add_argument("--version", action="version", version=f"igft {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except IgftError as exc:
        print(f"igft {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"igft {args.command}: interrupted; finished work is saved in the output folder, rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
