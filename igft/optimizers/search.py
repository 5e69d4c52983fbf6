"""One entry point for all backbones: `run_search(algo, dataset, lm, embedder, ...) -> SearchResult`."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from igft.data import Dataset
from igft.errors import IgftError
from igft.optimizers.budget import SearchBudget
from igft.optimizers.history import History
from igft.optimizers.objective import LabelFn, Objective, default_report_fn, gifa_label_fn
from igft.optimizers.results import SearchResult
from igft.optimizers.runner import SearchContext

logger = logging.getLogger(__name__)

ALGORITHMS = ("random", "greedy", "see", "hyperband-see")


class SearchConfigError(IgftError):
    """Search settings that cannot work together."""


@dataclass
class SearchSettings:
    """Settings shared by every backbone (backbone-specific ones live in their own config)."""

    objective: str = field(default="AMI_x_NCA", metadata={"help": "report key to maximise"})
    seed: int = field(default=0, metadata={"help": "seed of the validation order, parent choice and request seeds"})
    concurrency: int = field(default=1, metadata={"help": "candidates generated and scored in parallel"})
    feedback_on: str = field(default="validation", metadata={"help": "validation (the paper's random/greedy) or train (SEE: a separate train subset)"})
    train_fraction: float = field(default=0.2, metadata={"help": "share of conversations held out as the train subset when feedback_on=train"})
    train_r: int = field(default=2, metadata={"help": "train conversations labeled to compute feedback"})
    temperature: float = field(default=0.7, metadata={"help": "temperature of meta-prompt calls"})
    max_tokens: int = field(default=400, metadata={"help": "completion budget of meta-prompt calls"})


def run_search(algo: str, dataset: Dataset, lm, embedder=None, *, config: Any = None,
               settings: SearchSettings | None = None, budget: SearchBudget | None = None,
               label_fn: LabelFn | None = None, gifa_config=None, report_fn=default_report_fn,
               labeler_lm=None, history_path: str | Path | None = None, resume: bool = True,
               usage=None) -> SearchResult:
    """Run one backbone. With `history_path`, every trial is appended there and a rerun resumes."""
    from igft.optimizers.greedy import greedy_search
    from igft.optimizers.hyperband import hyperband_search
    from igft.optimizers.random import random_search
    from igft.optimizers.see import see_search

    if algo not in ALGORITHMS:
        raise SearchConfigError(f"unknown algorithm {algo!r}; use one of {', '.join(ALGORITHMS)}")
    settings = settings or SearchSettings()
    if label_fn is None:
        if embedder is None:
            raise SearchConfigError("GIFA scoring needs an embedder; pass --embedder (e.g. local:minilm or hashing)")
        label_fn = gifa_label_fn(embedder, gifa_config)
    validation, train = dataset, None
    if settings.feedback_on == "train":
        if len(dataset) < 2:
            raise SearchConfigError("feedback on a train subset needs at least 2 conversations; use --feedback-on validation")
        n_train = max(1, round(len(dataset) * settings.train_fraction))
        train, validation = dataset.head(n_train), dataset.subset(dataset.numbers[n_train:])
    elif settings.feedback_on != "validation":
        raise SearchConfigError(f"feedback_on must be validation or train, got {settings.feedback_on!r}")
    objective = Objective(validation, label_fn, key=settings.objective, seed=settings.seed, report_fn=report_fn)
    train_objective = Objective(train, label_fn, key=settings.objective, seed=settings.seed, report_fn=report_fn) if train else None
    history = History.open(history_path, resume=resume) if history_path else History()
    if history.n_resumable:
        logger.info("resuming: %d finished trials found in %s", history.n_resumable, history_path)
    ctx = SearchContext(lm=lm, objective=objective, history=history, budget=budget or SearchBudget(),
                        labeler_lm=labeler_lm, train_objective=train_objective, train_r=settings.train_r,
                        concurrency=settings.concurrency, seed=settings.seed, temperature=settings.temperature,
                        max_tokens=settings.max_tokens)
    if algo == "random":
        random_search(ctx, config)
    elif algo == "greedy":
        greedy_search(ctx, config)
    elif algo == "see":
        see_search(ctx, config, embedder=embedder)
    else:
        hyperband_search(ctx, config, embedder=embedder)
    snapshot = usage.snapshot() if usage is not None else {}
    snapshot.setdefault("search_budget", ctx.budget.snapshot())
    return SearchResult(algo=algo, history=history, stopped=ctx.stopped, usage=snapshot)
