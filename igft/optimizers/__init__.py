"""Prompt-search backbones that tune GIFA's instruction: random, greedy, SEE and Hyperband-SEE.

`run_search(algo, dataset, lm, embedder, ...)` runs one; each backbone is also callable on a
`SearchContext` (see `runner.py`). Trials are appended to a JSONL history as they are scored.
"""
from igft.optimizers.budget import BudgetExhausted, LiveBudget, SearchBudget
from igft.optimizers.greedy import GreedySearchConfig, greedy_search
from igft.optimizers.history import History
from igft.optimizers.hyperband import HyperbandConfig, hyperband_search, li_schedule, paper_schedule
from igft.optimizers.objective import Objective
from igft.optimizers.random import RandomSearchConfig, random_search
from igft.optimizers.results import SearchResult, plot_comparison, plot_progress
from igft.optimizers.runner import Candidate, SearchContext
from igft.optimizers.search import ALGORITHMS, SearchSettings, run_search
from igft.optimizers.see import SEEConfig, see_search
from igft.optimizers.trial import Trial

__all__ = ["ALGORITHMS", "BudgetExhausted", "Candidate", "GreedySearchConfig", "History", "HyperbandConfig",
           "LiveBudget", "Objective", "RandomSearchConfig", "SEEConfig", "SearchBudget", "SearchContext", "SearchResult",
           "SearchSettings", "Trial", "greedy_search", "hyperband_search", "li_schedule", "paper_schedule",
           "plot_comparison", "plot_progress", "random_search", "run_search", "see_search"]
