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
    "igft.cli.export",     # igft export --adapter DIR --merge --out DIR
    "igft.cli.demo",       # igft demo
    "igft.cli.curate",     # igft curate redact|dedup|synth
]

logger = logging.getLogger("igft")


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to every option whose help text does not already name its default.

    Unset defaults (None), off switches (False) and suppressed ones are left out: "(default: None)"
    tells a reader nothing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or default is None or default is False or default is argparse.SUPPRESS
                or isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
            return f"{text} (default: {str(shown).replace('%', '%%')})"
        return text


class IgftArgumentParser(argparse.ArgumentParser):
    """Every igft parser and subparser (argparse builds subparsers with the parent's class) shows defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = IgftArgumentParser(prog="igft", description="Intent-Guided Fine-Tuning for customer-support LLMs.")
    parser.add_argument("--version", action="version", version=f"igft {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging and third-party output (-v info, -vv debug); IGFT_VERBOSE=1 does the same")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from igft.quiet import quiet_third_party, verbose_requested

    quiet_third_party(args.verbose)
    if verbose_requested() and not args.verbose:
        args.verbose = 1  # IGFT_VERBOSE=1 means what -v means
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
