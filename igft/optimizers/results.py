"""What a search returns, and its plots (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import pandas as pd

from igft.optimizers.history import History


@dataclass
class SearchResult:
    """The best instruction found, the history, and the run's cost."""

    algo: str
    history: History
    stopped: str | None = None
    usage: dict = field(default_factory=dict)

    @property
    def best(self):
        return self.history.best()

    @property
    def best_instruction(self) -> str | None:
        return self.best.instruction if self.best else None

    @property
    def best_objective(self) -> float:
        return self.best.objective if self.best else float("nan")

    @property
    def frame(self) -> pd.DataFrame:
        return self.history.to_frame()

    def summary(self) -> dict:
        """The content of result.json."""
        best = self.best
        return {"algo": self.algo, "best_instruction": self.best_instruction,
                "best_objective": None if best is None or not math.isfinite(best.objective) else best.objective,
                "best_trial": best.id if best else None, "trials": len(self.history),
                "llm_calls": self.history.calls, "live_calls": int(self.usage.get("live_calls", self.history.calls)),
                "tokens": self.history.tokens, "stopped": self.stopped, "usage": self.usage}

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write result.json and the progress plots (history.jsonl is written during the search)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"result": out / "result.json"}
        paths["result"].write_text(json.dumps(self.summary(), indent=2, default=str))
        if len(self.history):
            paths["progress_calls"] = plot_progress({self.algo: self.frame}, out / "progress_calls.png", x="cum_calls")
            paths["progress_tokens"] = plot_progress({self.algo: self.frame}, out / "progress_tokens.png", x="cum_tokens")
        return paths


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_progress(frames: Mapping[str, pd.DataFrame], path: str | Path, x: str = "cum_calls",
                  title: str | None = None) -> Path:
    """Objective of each trial (dots) and best so far (line) against cumulative LLM calls or tokens."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, frame in frames.items():
        if frame.empty:
            continue
        line = ax.step(frame[x], frame["best_so_far"], where="post", label=f"{name} (best so far)")
        ax.scatter(frame[x], frame["objective"], s=12, alpha=0.5, color=line[0].get_color())
    ax.set_xlabel({"cum_calls": "cumulative LLM calls", "cum_tokens": "cumulative tokens"}.get(x, x))
    ax.set_ylabel("objective")
    ax.set_title(title or "prompt search progress")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def best_at_budget(frame: pd.DataFrame, budget: float, x: str = "cum_calls") -> float:
    """Best objective among trials finished within `budget` (cumulative calls or tokens)."""
    within = frame[frame[x] <= budget]
    return float(within["objective"].max()) if not within.empty else float("nan")


def plot_comparison(frames: Mapping[str, pd.DataFrame], path: str | Path, budget: float, x: str = "cum_calls",
                    baseline: float | None = None) -> Path:
    """Bars: each backbone's best objective within the same budget; a dashed line for the seed-only baseline."""
    plt = _pyplot()
    names = list(frames)
    values = [best_at_budget(frames[n], budget, x) for n in names]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.bar(names, [0 if math.isnan(v) else v for v in values], color="#4c72b0")
    for i, v in enumerate(values):
        ax.annotate("n/a" if math.isnan(v) else f"{v:.3f}", (i, 0 if math.isnan(v) else v), ha="center", va="bottom")
    if baseline is not None and math.isfinite(baseline):
        ax.axhline(baseline, ls="--", color="grey", label=f"seed instruction only ({baseline:.3f})")
        ax.legend(fontsize=8)
    ax.set_ylabel("best objective")
    ax.set_title(f"backbones at equal budget ({budget:g} {'LLM calls' if x == 'cum_calls' else 'tokens'})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
