"""Greedy search (the paper's `gpo`): each child improves the best prompt scored so far."""
from __future__ import annotations

import math
import random

from igft.optimizers.iterative import IterativeConfig, iterative_search
from igft.optimizers.runner import SearchContext
from igft.optimizers.trial import Trial

GreedySearchConfig = IterativeConfig


def best_parent(trials: list[Trial], rng: random.Random) -> Trial:
    """Highest objective; ties go to the earliest trial (the RNG is not used, kept for one signature)."""
    scored = [t for t in trials if not math.isnan(t.objective)]
    return max(scored, key=lambda t: (t.objective, -t.id))


def greedy_search(ctx: SearchContext, config: GreedySearchConfig | None = None) -> None:
    """Run greedy search; trials are recorded in ctx.history."""
    iterative_search(ctx, config or GreedySearchConfig(), best_parent, "greedy")
