"""The pipeline's two summary figures: labelers side by side (Stage 1) and base vs fine-tuned (Stage 2).

Every score shown here lives on [0, 1] and is 0 at chance (AMI, NCA, AMI x NCA, Hungarian accuracy
above its floor, intent F1 of a model that names no right intent). Axes are fixed to [0, 1], so a
run whose values are all at chance shows flat bars and says so on the figure, instead of matplotlib
zooming into a 1e-13 range of rounding noise.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from igft.figures import pyplot, save_figure

AT_CHANCE = 1e-3  # |value| below this counts as "at chance" (rounding noise of an adjusted score)


def all_at_chance(values: Sequence[float | None]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(abs(float(v)) < AT_CHANCE for v in present)


def _bars(ax, groups: Sequence[str], series: Mapping[str, Sequence[float | None]], ylabel: str) -> None:
    import numpy as np

    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for k, (name, values) in enumerate(series.items()):
        heights = [0.0 if v is None else float(v) for v in values]
        bars = ax.bar(x + (k - (len(series) - 1) / 2) * width, heights, width, label=name)
        for bar, v in zip(bars, values):
            ax.annotate("n/a" if v is None else f"{v:.2f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, groups, rotation=15, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(ylabel)
    every = [v for values in series.values() for v in values]
    if all_at_chance(every):
        ax.text(0.5, 0.55, "all values at chance (0): nothing to tell apart", transform=ax.transAxes,
                ha="center", va="center", fontsize=10, color="firebrick")


def plot_labelers(table: pd.DataFrame, path: str | Path, title: str = "labelers on the toy data (gold intents)") -> Path:
    """Bars of AMI x NCA, AMI, NCA and Hungarian accuracy per labeler (rows of compare_labelers' table)."""
    plt = pyplot()
    metrics = [m for m in ("AMI_x_NCA", "AMI", "NCA", "accuracy_hungarian") if m in table.columns]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(table)), 4.0))
    _bars(ax, list(table["labeler"]), {m: list(table[m]) for m in metrics}, "score (AMI and NCA: 0 = chance)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=len(metrics))
    fig.tight_layout()
    return save_figure(fig, path)


STAGE2_BARS = (("intent_f1", "intent F1"), ("malformed_share", "malformed share"), ("rougeL", "ROUGE-L"),
               ("meteor", "METEOR"), ("bertscore_f1", "BERTScore F1 (MiniLM)"))


def plot_stage2_comparison(comparison: Mapping[str, Mapping[str, Any]], path: str | Path,
                           title: str = "Stage 2 on held-out toy turns: base vs fine-tuned") -> Path:
    """Bars of intent F1, malformed share and reply scores for each model of `comparison`."""
    plt = pyplot()
    shown = [(k, label) for k, label in STAGE2_BARS if any(k in figures for figures in comparison.values())]
    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    _bars(ax, [label for _, label in shown],
          {name: [figures.get(k) for k, _ in shown] for name, figures in comparison.items()}, "score")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
