"""Every igft command's --help shows its defaults (set once, in igft.cli's parser class)."""
from __future__ import annotations

import argparse

from igft.cli import build_parser


def _parsers(parser: argparse.ArgumentParser, path=("igft",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, path + (name,))


def test_every_option_with_a_default_shows_it_in_help():
    missing = []
    for path, parser in _parsers(build_parser()):
        formatter = parser.formatter_class(parser.prog)
        for action in parser._actions:
            if (not action.option_strings or action.default in (None, False, argparse.SUPPRESS)
                    or isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
                continue
            if "default" not in formatter._get_help_string(action).lower():
                missing.append(f"{' '.join(path)} {action.option_strings[0]}")
    assert not missing, f"options whose --help hides the default: {missing}"
    assert "(default: runs/demo)" in " ".join(dict(_parsers(build_parser()))[("igft", "demo")].format_help().split())


def test_subcommands_count_and_nested_parsers_share_the_formatter():
    paths = [path for path, _ in _parsers(build_parser())]
    assert ("igft", "demo") in paths and ("igft", "label") in paths
    for path, parser in _parsers(build_parser()):
        assert parser.formatter_class.__name__ in ("DefaultsHelpFormatter", "ArgumentDefaultsHelpFormatter"), path


# What --help actually prints: an option without help text prints no "(default: X)" at all.
def test_every_option_with_a_default_has_help_text_that_prints_it():
    silent = []
    for path, parser in _parsers(build_parser()):
        for action in parser._actions:
            if (not action.option_strings or action.default in (None, False, argparse.SUPPRESS)
                    or isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
                continue
            if not (action.help or "").strip():
                silent.append(f"{' '.join(path)} {action.option_strings[0]}")
    assert not silent, f"options with a default but no help text (argparse then prints no default): {silent}"
