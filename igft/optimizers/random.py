"""Random search (the paper's `rpo`): each child improves a parent drawn uniformly from all scored prompts."""
from __future__ import annotations

import random as _random

from igft.optimizers.iterative import IterativeConfig, iterative_search
from igft.optimizers.runner import SearchContext
from igft.optimizers.trial import Trial

RandomSearchConfig = IterativeConfig


def uniform_parent(trials: list[Trial], rng: _random.Random) -> Trial:
    return trials[rng.randrange(len(trials))]


def random_search(ctx: SearchContext, config: RandomSearchConfig | None = None) -> None:
    """Run random search; trials are recorded in ctx.history."""
    iterative_search(ctx, config or RandomSearchConfig(), uniform_parent, "random")
