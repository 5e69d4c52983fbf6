"""One home for search options: CLI flags, defaults and run.json all come from the config dataclasses.

Each option is one field of SearchSettings, LiveBudget (live calls / tokens / $ over the job's usage
ledger, as in `igft label`), SearchBudget (the trial cap), IterativeConfig (random / greedy), SEEConfig,
HyperbandConfig or GifaConfig (prefixed `gifa_`); its help text, type, choices and default are the
field's, written once. The pipeline config's `search.options` mapping is checked against the same table. A name shared by two configs (`r`, `lagged_feedback`) is one
option that sets both. `igft optimize` generates its flags from here, `run_optimize` builds the configs
from the same table, and a recorded run.json stores the resolved values under the same names.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any

from igft.errors import IgftError


class OptionError(IgftError):
    """An optimize option with an unknown name or a value of the wrong kind."""


@dataclass(frozen=True)
class Option:
    name: str
    owner: type
    field_name: str
    kind: Any
    default: Any
    help: str
    choices: tuple | None = None
    metavar: Any = None
    group: str = "search"
    optional: bool = False  # None is a valid value (e.g. "no cap")


# Fields that are library-only (callables, nested configs, prices, instruction lists).
_SKIP = {"warm_start", "see", "dollars_fn", "prompt_price_per_1k", "completion_price_per_1k", "instruction"}
_GIFA_FIELDS = ("max_tokens", "tokens_per_message", "max_retries", "method", "top_k")


def _sources() -> list[tuple[str, type, str]]:
    from igft.gifa import GifaConfig
    from igft.optimizers.budget import LiveBudget, SearchBudget
    from igft.optimizers.hyperband import HyperbandConfig
    from igft.optimizers.iterative import IterativeConfig
    from igft.optimizers.search import SearchSettings
    from igft.optimizers.see import SEEConfig

    return [("search", SearchSettings, ""), ("budget", LiveBudget, ""), ("budget", SearchBudget, ""), ("random / greedy", IterativeConfig, ""),
            ("SEE", SEEConfig, ""), ("Hyperband-SEE", HyperbandConfig, ""), ("GIFA (scoring)", GifaConfig, "gifa_")]


def _is_optional(hint) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def _strip_optional(hint):
    if _is_optional(hint):
        return [a for a in typing.get_args(hint) if a is not type(None)][0]
    return hint


def options() -> dict[str, Option]:
    """name -> Option, in group order; the first config defining a name owns its help and default."""
    table: dict[str, Option] = {}
    for group, cls, prefix in _sources():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in _SKIP or (prefix and f.name not in _GIFA_FIELDS) or not f.metadata.get("help"):
                continue
            name = prefix + f.name
            if name in table:
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            table[name] = Option(name, cls, f.name, _strip_optional(hints[f.name]), default, f.metadata["help"],
                                 tuple(f.metadata["choices"]) if "choices" in f.metadata else None,
                                 f.metadata.get("metavar"), group, _is_optional(hints[f.name]))
    return table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per option; every default is None (= the recorded run's value, else the library default)."""
    groups: dict[str, Any] = {}
    for opt in options().values():
        group = groups.get(opt.group) or groups.setdefault(opt.group, parser.add_argument_group(opt.group))
        flag = "--" + opt.name.replace("_", "-")
        shown = opt.default if not isinstance(opt.default, tuple) else " ".join(map(str, opt.default))
        help_text = opt.help if "default" in opt.help else f"{opt.help} (default: {shown})"
        kwargs: dict[str, Any] = {"dest": opt.name, "default": None, "help": help_text}
        origin = typing.get_origin(opt.kind)
        if opt.kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is tuple:
            args = typing.get_args(opt.kind)
            kwargs["type"] = args[0]
            kwargs["nargs"] = "+" if len(args) == 2 and args[1] is Ellipsis else len(args)
        else:
            kwargs["type"] = opt.kind
        if opt.choices:
            kwargs["choices"] = opt.choices
        if opt.metavar:
            kwargs["metavar"] = opt.metavar
        group.add_argument(flag, **kwargs)


def defaults(algo: str) -> dict[str, Any]:
    """The library's default of every option for one backbone (Hyperband-SEE's rounds use its own SEE defaults)."""
    from igft.optimizers.hyperband import HyperbandConfig

    out = {name: opt.default for name, opt in options().items()}
    if algo == "hyperband-see":
        see = HyperbandConfig().see
        for name, opt in options().items():
            if opt.group == "SEE":
                out[name] = getattr(see, opt.field_name)
    return out


def coerce(values: dict[str, Any]) -> dict[str, Any]:
    """JSON lists back to tuples (run.json), unknown names rejected."""
    table = options()
    unknown = sorted(set(values) - set(table))
    if unknown:
        raise OptionError(f"unknown optimize option(s) {unknown}; valid: {sorted(table)}")
    out = {}
    for name, value in values.items():
        out[name] = tuple(value) if isinstance(value, list) else value
    return out


def _kind_name(kind) -> str:
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        inner = getattr(args[0], "__name__", str(args[0]))
        return f"a list of {inner}" if len(args) == 2 and args[1] is Ellipsis else f"a list of {len(args)} {inner}"
    return getattr(kind, "__name__", str(kind))


def _fits(kind, value) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is int:
        return isinstance(value, int)
    if kind is float:
        return isinstance(value, (int, float))
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        if not isinstance(value, (list, tuple)):
            return False
        if not (len(args) == 2 and args[1] is Ellipsis) and len(value) != len(args):
            return False
        return all(_fits(args[0], v) for v in value)
    return isinstance(value, kind)


def check(values: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Options given by name (a config file's mapping): unknown names and values of the wrong kind or
    outside the choices raise one OptionError naming the key (and the valid names); returns coerce(values)."""
    table = options()
    prefix = f"{where}: " if where else ""
    unknown = sorted(set(values) - set(table))
    if unknown:
        raise OptionError(f"{prefix}unknown option(s) {unknown}; valid: {sorted(table)}")
    for name, value in values.items():
        opt = table[name]
        if value is None:
            if opt.optional:
                continue
            raise OptionError(f"{prefix}{name} may not be null; expected {_kind_name(opt.kind)}")
        if not _fits(opt.kind, value):
            raise OptionError(f"{prefix}{name}: expected {_kind_name(opt.kind)}, got {value!r}")
        if opt.group == "budget" and value < 0:
            raise OptionError(f"{prefix}{name} must be 0 or more, got {value!r}")
        items = value if isinstance(value, (list, tuple)) else [value]
        if opt.choices and any(v not in opt.choices for v in items):
            raise OptionError(f"{prefix}{name}: {value!r} is not one of {list(opt.choices)}")
    return coerce(values)


def build(cls: type, values: dict[str, Any], **extra):
    """An instance of one config dataclass from resolved options (fields it has; `extra` added)."""
    table = options()
    kwargs = {opt.field_name: values[name] for name, opt in table.items()
              if name in values and any(f.name == opt.field_name for f in dataclasses.fields(cls))
              and (opt.owner is cls or opt.field_name in {"r", "lagged_feedback"} or opt.owner.__name__ == cls.__name__)}
    # shared names (r, lagged_feedback) reach every config that has the field
    for name in ("r", "lagged_feedback"):
        if name in values and any(f.name == name for f in dataclasses.fields(cls)):
            kwargs[name] = values[name]
    kwargs.update(extra)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise OptionError(f"cannot build {cls.__name__}: {exc}") from None
