"""Known third-party noise is silenced by default and shown again with IGFT_VERBOSE=1 / --verbose."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings

from igft.quiet import quiet_third_party, verbose_requested

IMPORT_PEFT = "from igft.quiet import quiet_third_party; quiet_third_party(); import peft, transformers"


def _stderr(env_extra: dict) -> str:
    env = {k: v for k, v in os.environ.items() if k != "IGFT_VERBOSE"} | env_extra
    done = subprocess.run([sys.executable, "-c", IMPORT_PEFT], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def test_bitsandbytes_kernel_warning_only_in_verbose_mode():
    quiet = _stderr({})
    assert "gemm_4bit_forward" not in quiet and "FutureWarning" not in quiet
    loud = _stderr({"IGFT_VERBOSE": "1"})
    # where this CPU triggers the warning at all (AVX512-BF16 without the `kernels` package), verbose shows it
    if "gemm_4bit_forward" in loud:
        assert "gemm_4bit_forward" not in quiet


def test_verbose_switches(monkeypatch):
    monkeypatch.delenv("IGFT_VERBOSE", raising=False)
    assert not verbose_requested() and verbose_requested(1)
    monkeypatch.setenv("IGFT_VERBOSE", "1")
    assert verbose_requested() and quiet_third_party() is False


def test_igft_warnings_are_not_silenced(monkeypatch):
    monkeypatch.delenv("IGFT_VERBOSE", raising=False)
    quiet_third_party()
    with warnings.catch_warnings(record=True) as caught:
        quiet_third_party()
        warnings.warn_explicit("igft's own warning", UserWarning, "igft/x.py", 1, module="igft.x")
    assert any("igft's own" in str(w.message) for w in caught)
