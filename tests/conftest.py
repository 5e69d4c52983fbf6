import os

# Tests never reach a model hub: everything they load ships in a pip package or is built here.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
# Spinning OpenMP threads make torch 50-150x slower on a shared CPU (one MiniLM query: 1480 ms vs 9 ms).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PAPER_RUNS = REPO_ROOT.parent / "shared" / "external" / "paper_runs"


@pytest.fixture
def paper_runs() -> Path:
    """The paper's published artifacts (third-party, never copied here); skip when absent."""
    if not PAPER_RUNS.is_dir():
        pytest.skip(f"{PAPER_RUNS} is absent (third-party reference data)")
    return PAPER_RUNS
