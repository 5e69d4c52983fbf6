"""Silence known third-party noise by default; `--verbose` or IGFT_VERBOSE=1 shows it again.

What a run printed before this existed, none of it actionable for an igft user:
- bitsandbytes (imported by peft): "Failed to load CPU gemm_4bit_forward from kernels-community ...";
- transformers / huggingface_hub: weight-loading progress bars, advisory and deprecation warnings;
- torch / TRL / PEFT / sentence-transformers: FutureWarning and DeprecationWarning of their own APIs;
- tokenizers: the "process just got forked" parallelism warning.

Only these named sources are quietened (logging levels, warnings filtered by module, hub progress
bars); igft's own log lines and every error still come through. Call `quiet_third_party()` before
the heavy imports where possible (the CLI and the notebook helpers do); calling it again is harmless.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings

VERBOSE_ENV = "IGFT_VERBOSE"
# loggers whose warnings are noise for igft users (their errors still show)
NOISY_LOGGERS = ("bitsandbytes", "transformers", "huggingface_hub", "peft", "trl", "accelerate", "sentence_transformers",
                 "datasets", "torch.distributed", "absl", "bert_score")
# modules whose FutureWarning / DeprecationWarning / UserWarning are about their own internals
NOISY_MODULES = r"(transformers|torch|trl|peft|accelerate|bitsandbytes|sentence_transformers|huggingface_hub|datasets|bert_score|jupyter_client|pydantic)(\.|$)"


def verbose_requested(verbose: bool | int | None = None) -> bool:
    """True when the caller asked for it or IGFT_VERBOSE is set to a true value (1, true, yes)."""
    if verbose:
        return True
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def quiet_third_party(verbose: bool | int | None = None) -> bool:
    """Quieten the known noisy libraries unless verbose; returns whether it did."""
    if verbose_requested(verbose):
        return False
    # Environment switches are read when the libraries are imported (or on each bar for the hub).
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=NOISY_MODULES)
    if "transformers" in sys.modules:  # already imported: its own switches, not the environment
        try:
            from transformers.utils import logging as hf_logging
            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover - a transformers without these helpers
            pass
    return True
