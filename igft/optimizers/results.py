"""What a search returns, and its plots (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import pandas as pd

from igft.figures import pyplot, save_figure
from igft.optimizers.history import History


def _finite(value) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


@dataclass
class SearchResult:
    """The best instruction found (on validation, at the largest r), its test score, the history, the cost."""

    algo: str
    history: History
    stopped: str | None = None
    usage: dict = field(default_factory=dict)
    split_sizes: dict = field(default_factory=dict)
    # What the final scoring (seed on validation, best and seed on test) cost; it may run past a spent cap.
    final_scoring: dict = field(default_factory=dict)
    # Which model wrote the instructions (llm) and which labeled with them (gifa_llm), endpoints left out.
    models: dict = field(default_factory=dict)

    @property
    def best(self):
        return self.history.best_at_full_resource()

    def _final(self, suffix: str) -> float | None:
        trial = self.history.final(suffix)
        return _finite(trial.objective) if trial else None

    @property
    def figures(self) -> dict:
        """best_val / best_test / seed_val / seed_test / test_gain (None where not scored)."""
        best = self.best
        best_val = _finite(best.objective) if best else None
        best_test, seed_test = self._final("best_test"), self._final("seed_test")
        gain = best_test - seed_test if best_test is not None and seed_test is not None else None
        return {"best_val": best_val, "best_test": best_test, "seed_val": self._final("seed_val"),
                "seed_test": seed_test, "test_gain": gain}

    @property
    def best_instruction(self) -> str | None:
        return self.best.instruction if self.best else None

    @property
    def best_objective(self) -> float:
        return self.best.objective if self.best else float("nan")

    @property
    def frame(self) -> pd.DataFrame:
        """The search's trials (validation scores); the final test scores are in `figures`."""
        return History(self.history.search_trials()).to_frame()

    def summary(self) -> dict:
        """The content of result.json. best_objective is best_val (kept for older readers)."""
        best = self.best
        figures = self.figures
        return {"algo": self.algo, "best_instruction": self.best_instruction, **figures,
                "best_objective": figures["best_val"], "best_trial": best.id if best else None,
                "best_r": best.r if best else None, "split_sizes": dict(self.split_sizes),
                **{f"n_{name}": size for name, size in self.split_sizes.items()},
                "trials": len(self.history.search_trials()), "final_trials": len(self.history) - len(self.history.search_trials()),
                "llm_calls": self.history.calls, "live_calls": int(self.usage.get("live_calls", self.history.calls)),
                "tokens": self.history.tokens, "stopped": self.stopped, "final_scoring": dict(self.final_scoring),
                "models": dict(self.models), "usage": self.usage}

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write result.json and the progress plots (history.jsonl is written during the search)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"result": out / "result.json"}
        paths["result"].write_text(json.dumps(self.summary(), indent=2, default=str))
        if len(self.history.search_trials()):
            tests = {self.algo: self.figures}
            paths["progress_calls"] = plot_progress({self.algo: self.frame}, out / "progress_calls.png", x="cum_calls", tests=tests)
            paths["progress_tokens"] = plot_progress({self.algo: self.frame}, out / "progress_tokens.png", x="cum_tokens", tests=tests)
        return paths


def plot_progress(frames: Mapping[str, pd.DataFrame], path: str | Path, x: str = "cum_calls",
                  title: str | None = None, tests: Mapping[str, dict] | None = None) -> Path:
    """Validation objective of each trial (dots) and best so far (line) against cumulative LLM calls or
    tokens; with `tests` ({name: SearchResult.figures}), the test scores of the chosen and the seed
    instruction as a star and a cross at the end of each line."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, frame in frames.items():
        if frame.empty:
            continue
        line = ax.step(frame[x], frame["best_so_far"], where="post", label=f"{name} (validation, best so far)")
        color = line[0].get_color()
        ax.scatter(frame[x], frame["objective"], s=12, alpha=0.5, color=color)
        figures = (tests or {}).get(name) or {}
        end = float(frame[x].max())
        if figures.get("best_test") is not None:
            ax.scatter([end], [figures["best_test"]], marker="*", s=120, color=color,
                       label=f"{name} best on test ({figures['best_test']:.3f})")
        if figures.get("seed_test") is not None:
            ax.scatter([end], [figures["seed_test"]], marker="x", s=60, color=color,
                       label=f"{name} seed on test ({figures['seed_test']:.3f})")
    ax.set_xlabel({"cum_calls": "cumulative LLM calls", "cum_tokens": "cumulative tokens"}.get(x, x))
    ax.set_ylabel("objective")
    ax.set_title(title or "prompt search progress")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def best_at_budget(frame: pd.DataFrame, budget: float, x: str = "cum_calls") -> float:
    """Best objective among trials finished within `budget` (cumulative calls or tokens)."""
    within = frame[frame[x] <= budget]
    return float(within["objective"].max()) if not within.empty else float("nan")


def plot_comparison(frames: Mapping[str, pd.DataFrame], path: str | Path, budget: float, x: str = "cum_calls",
                    baseline: float | None = None, tests: Mapping[str, dict] | None = None) -> Path:
    """Bars: each backbone's best validation objective within the same budget; with `tests`
    ({name: SearchResult.figures}), a star for the test score of its final choice and a cross for the
    seed instruction's; a dashed line for the seed-only baseline."""
    plt = pyplot()
    names = list(frames)
    values = [best_at_budget(frames[n], budget, x) for n in names]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.bar(names, [0 if math.isnan(v) else v for v in values], color="#4c72b0", label="best on validation")
    for i, name in enumerate(names):
        figures = (tests or {}).get(name) or {}
        if figures.get("best_test") is not None:
            ax.scatter([i], [figures["best_test"]], marker="*", s=140, color="#dd8452", zorder=3,
                       label="chosen instruction on test" if i == 0 else None)
        if figures.get("seed_test") is not None:
            ax.scatter([i], [figures["seed_test"]], marker="x", s=70, color="black", zorder=3,
                       label="seed instruction on test" if i == 0 else None)
    if tests:
        ax.legend(fontsize=8)
    for i, v in enumerate(values):
        ax.annotate("n/a" if math.isnan(v) else f"{v:.3f}", (i, 0 if math.isnan(v) else v), ha="center", va="bottom")
    if baseline is not None and math.isfinite(baseline):
        ax.axhline(baseline, ls="--", color="grey", label=f"seed instruction only ({baseline:.3f})")
        ax.legend(fontsize=8)
    ax.set_ylabel("best objective")
    ax.set_title(f"backbones at equal budget ({budget:g} {'LLM calls' if x == 'cum_calls' else 'tokens'})")
    fig.tight_layout()
    return save_figure(fig, path)
