"""Matplotlib for igft's PNG plots: the headless backend, and the one way a figure is written.

Imported lazily by each plot function, so that `import igft` never pays for matplotlib.
"""
from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display on servers, CI or a notebook kernel's worker)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Write `fig` as a PNG at `path` (creating its folder), close it to free memory, return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path
