"""Version floors of the training stack, checked when igft.finetune.train / .generate are imported
and again when a model is loaded (with bitsandbytes for 4-bit).

The floors are the first releases that have the APIs igft calls (an older one fails deep inside a
Trainer with an unrelated-looking TypeError). They must agree with pyproject.toml:
- transformers 4.56: `from_pretrained(dtype=...)` (older releases only know `torch_dtype`);
- trl 0.20: SFTConfig `assistant_only_loss`, `completion_only_loss`, `packing_strategy="bfd"`;
- peft 0.15: LoraConfig `trainable_token_indices` (trainable rows for tokens a chat template adds);
- accelerate 1.0: `PartialState` process indices under `accelerate launch`;
- bitsandbytes 0.47 (only with --quantize 4bit): the CPU backend; CUDA works from 0.45.
TRL's training chat templates (`get_training_chat_template`) arrived later; without them igft falls
back to its ChatML training template, so they are no floor.
"""
from __future__ import annotations

import functools
from importlib import metadata

from igft.errors import IgftError

FLOORS = {"transformers": "4.56", "trl": "0.20", "peft": "0.15", "accelerate": "1.0"}
OPTIONAL_FLOORS = {"bitsandbytes": "0.47"}


class VersionTooOld(IgftError):
    """An installed package is older than the API igft uses."""


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
        if not piece.isdigit():  # "0rc1", "16+cpu": the release number ends here
            break
    return tuple(parts)


def too_old(installed: str, floor: str) -> bool:
    """True when `installed` is older than `floor` (release numbers only: 1.16.0.dev0 counts as 1.16.0)."""
    return _release(installed) < _release(floor)


def check_package(name: str, floor: str, installed: str | None = None) -> None:
    if installed is None:
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise VersionTooOld(f"{name} is not installed; igft needs {name}>={floor}: pip install '{name}>={floor}'") from None
    if too_old(installed, floor):
        raise VersionTooOld(f"{name} {installed} is too old; igft needs {name}>={floor}: pip install -U '{name}>={floor}'")


@functools.lru_cache(maxsize=1)
def check_versions(with_bitsandbytes: bool = False) -> None:
    """Raise VersionTooOld naming the package and the version needed (cached: checked once per process)."""
    for name, floor in FLOORS.items():
        check_package(name, floor)
    if with_bitsandbytes:
        for name, floor in OPTIONAL_FLOORS.items():
            check_package(name, floor)
