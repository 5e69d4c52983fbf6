"""Files that ship with igft: the toy conversations and the recorded cassettes.

They live at the repository root (`dummy_data/`, `simulated_runs/`) and inside the wheel as the
packages `igft.dummy_data` / `igft.simulated_runs`; this module finds them in both cases.
"""
from __future__ import annotations

import importlib.resources
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent


def repo_root() -> Path:
    """The folder above the igft package (the repository root in a checkout)."""
    return _REPO_ROOT


def _resource_dir(name: str) -> Path:
    in_repo = _REPO_ROOT / name
    if in_repo.is_dir():
        return in_repo
    return Path(str(importlib.resources.files(f"igft.{name}")))


def dummy_data_dir() -> Path:
    return _resource_dir("dummy_data")


def simulated_runs_dir() -> Path:
    return _resource_dir("simulated_runs")


def toy_conversations_path() -> Path:
    """The package's own toy conversations with gold intents."""
    return dummy_data_dir() / "toy_conversations.csv"
