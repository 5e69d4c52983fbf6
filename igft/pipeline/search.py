"""The prompt-search step of the pipeline: each configured backbone, then one comparison figure.

Thin over igft.optimizers.command (the same code path as `igft optimize`). Each search is judged out
of sample; the comparison figure shows validation bars with the test score of each backbone's choice.
"""
from __future__ import annotations

import logging
from pathlib import Path

from igft.optimizers.command import ALGO_DIRS, OptimizeRequest, run_optimize
from igft.optimizers.results import SearchResult
from igft.pipeline.config import PipelineConfig
from igft.pipeline.stage1 import cassette_for

logger = logging.getLogger(__name__)


def run_backbones(cfg: PipelineConfig, out_dir: str | Path, progress: bool = True) -> dict[str, SearchResult]:
    """Run every backbone of cfg.search into out_dir/<backbone>/ and draw out_dir/comparison.png."""
    out = Path(out_dir)
    bundled_replay = cfg.data is None and cfg.cassette_dir is None and cfg.mode == "replay"
    results: dict[str, SearchResult] = {}
    if bundled_replay and cfg.search.options:
        logger.warning("search.options %s ignored: the bundled replay keeps its recorded settings (set data or "
                       "cassette_dir to search with them)", sorted(cfg.search.options))
    for algo in cfg.search.backbones:
        logger.info("prompt search: %s", algo)
        # max_calls counts live calls over reruns in the backbone's folder, so it cannot change a replay.
        overrides = {"max_trials": cfg.search.max_trials, "max_calls": cfg.search.max_calls}
        if not bundled_replay:  # a bundled replay keeps the recorded settings, so it sends the recorded requests
            # One pipeline LLM writes the instructions and labels with them, as it labels in Stage 1.
            overrides.update({"llm": cfg.llm, "gifa_llm": cfg.llm, "embedder": cfg.embedder, "seed": cfg.seed,
                              "concurrency": cfg.search.concurrency, **cfg.search.options})
        request = OptimizeRequest(algo=algo, out=str(out / ALGO_DIRS[algo]), data=cfg.data, mode=cfg.mode,
                                  cassette=cassette_for(cfg, ALGO_DIRS[algo]), overrides=overrides)
        results[algo] = run_optimize(request).result
    frames = {name: r.frame for name, r in results.items() if not r.frame.empty}
    if frames:
        from igft.optimizers.results import plot_comparison, plot_progress
        # equal budget: the smallest total spend among the backbones, so every bar saw the same calls
        budget = min(float(f["cum_calls"].max()) for f in frames.values())
        tests = {name: r.figures for name, r in results.items()}
        plot_comparison(frames, out / "comparison.png", budget, tests=tests)
        plot_progress(frames, out / "progress_calls.png", title="prompt search: all backbones", tests=tests)
    return results
