"""One entry point for all backbones: `run_search(algo, dataset, lm, embedder, ...) -> SearchResult`.

Every search is judged out of sample: the conversations are split once (seeded) into train (feedback
and Lamarckian examples), validation (every comparison) and test (scored once at the end, for the
chosen instruction and for the seed instruction), see igft.optimizers.split.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from igft.data import Dataset
from igft.errors import IgftError
from igft.optimizers.budget import SearchBudget, past_live_caps
from igft.optimizers.history import History
from igft.optimizers.objective import LabelFn, Objective, gifa_label_fn, metrics_report_fn
from igft.optimizers.prompts import FEEDBACK_GOLD
from igft.optimizers.results import SearchResult
from igft.optimizers.runner import SearchContext
from igft.optimizers.split import DEFAULT_SPLIT, split_conversations

logger = logging.getLogger(__name__)

ALGORITHMS = ("random", "greedy", "see", "hyperband-see")


class SearchConfigError(IgftError):
    """Search settings that cannot work together."""


@dataclass
class SearchSettings:
    """Settings shared by every backbone (backbone-specific ones live in their own config)."""

    objective: str = field(default="AMI_x_NCA", metadata={"help": "report key to maximise (AMI_x_NCA, AMI, NCA, ARI, purity, pairwise_F1, ...)"})
    seed: int = field(default=0, metadata={"help": "seed of the split, the validation order, GIFA's request seed, error-example sampling and every random choice"})
    concurrency: int = field(default=1, metadata={"help": "candidates generated and scored in parallel (results do not depend on it)"})
    split: tuple[float, float, float] = field(default=DEFAULT_SPLIT, metadata={
        "help": "fractions of conversations for train (feedback), validation (comparisons) and test (final score)",
        "metavar": ("TRAIN", "VAL", "TEST")})
    train_r: int | None = field(default=None, metadata={"help": "train conversations labeled per feedback report (default: the whole train split)"})
    feedback_gold: str = field(default="examples", metadata={
        "help": "gold information in feedback prompts: examples (error message pairs, no gold names), names (also gold intent names), none",
        "choices": FEEDBACK_GOLD})
    missing: str = field(default="cluster", metadata={
        "help": "unlabeled messages in the objective: cluster (one extra cluster, failing costs score), drop, singleton",
        "choices": ("cluster", "drop", "singleton")})
    temperature: float = field(default=0.7, metadata={"help": "temperature of meta-prompt calls"})
    meta_max_tokens: int = field(default=400, metadata={"help": "completion budget of meta-prompt calls"})


def _seed_instruction(config: Any) -> str:
    from igft.optimizers.iterative import seed_instruction

    return getattr(config, "seed_instruction", None) or seed_instruction()


def run_search(algo: str, dataset: Dataset, lm, embedder=None, *, config: Any = None,
               settings: SearchSettings | None = None, budget: SearchBudget | None = None,
               label_fn: LabelFn | None = None, gifa_config=None, report_fn=None,
               labeler_lm=None, history_path: str | Path | None = None, resume: bool = True,
               usage=None) -> SearchResult:
    """Run one backbone on the validation split, then score its best and the seed instruction on test.

    With `history_path`, every trial is appended there and a rerun resumes. `report_fn(dataset, labels)`
    defaults to igft.metrics with the search seed and `settings.missing`.
    """
    from igft.optimizers.greedy import greedy_search
    from igft.optimizers.hyperband import hyperband_search
    from igft.optimizers.random import random_search
    from igft.optimizers.see import see_search

    if algo not in ALGORITHMS:
        raise SearchConfigError(f"unknown algorithm {algo!r}; use one of {', '.join(ALGORITHMS)}")
    settings = settings or SearchSettings()
    if settings.feedback_gold not in FEEDBACK_GOLD:
        raise SearchConfigError(f"feedback_gold must be one of {', '.join(FEEDBACK_GOLD)}, got {settings.feedback_gold!r}")
    from igft.metrics import MISSING_POLICIES

    if settings.missing not in MISSING_POLICIES:
        raise SearchConfigError(f"missing must be one of {', '.join(MISSING_POLICIES)}, got {settings.missing!r}")
    if label_fn is None:
        if embedder is None:
            raise SearchConfigError("GIFA scoring needs an embedder; pass --embedder (e.g. local:minilm or hashing)")
        from igft.gifa import GifaConfig

        # The search seed is GIFA's request seed too: one seed fixes every sampled answer.
        label_fn = gifa_label_fn(embedder, replace(gifa_config or GifaConfig(), seed=settings.seed))
    report_fn = report_fn or metrics_report_fn(seed=settings.seed, missing=settings.missing)
    parts = split_conversations(dataset, settings.split, settings.seed)
    logger.info("split %s conversations: %s", len(dataset), parts.sizes())
    common = dict(key=settings.objective, seed=settings.seed, report_fn=report_fn)
    objective = Objective(parts.validation, label_fn, name="validation", **common)
    train_objective = Objective(parts.train, label_fn, name="train", **common)
    test_objective = Objective(parts.test, label_fn, name="test", **common)
    history = History.open(history_path, resume=resume) if history_path else History()
    if history.n_resumable:
        logger.info("resuming: %d finished trials found in %s", history.n_resumable, history_path)
    ctx = SearchContext(lm=lm, objective=objective, history=history, budget=budget or SearchBudget(),
                        labeler_lm=labeler_lm, train_objective=train_objective, train_r=settings.train_r,
                        concurrency=settings.concurrency, seed=settings.seed, temperature=settings.temperature,
                        max_tokens=settings.meta_max_tokens, feedback_gold=settings.feedback_gold)
    if algo == "random":
        random_search(ctx, config)
    elif algo == "greedy":
        greedy_search(ctx, config)
    elif algo == "see":
        see_search(ctx, config, embedder=embedder)
    else:
        hyperband_search(ctx, config, embedder=embedder)
    before = usage.snapshot() if usage is not None else None
    # The final scores are what the search is judged by: they may run past a spent cap (charged all the same).
    with past_live_caps(lm, labeler_lm, embedder):
        finals = _score_final(ctx, test_objective, _seed_instruction(getattr(config, "see", config)))
    final_cost = _final_cost(finals, before, usage.snapshot() if usage is not None else None, ctx.stopped)
    snapshot = usage.snapshot() if usage is not None else {}
    snapshot.setdefault("search_budget", ctx.budget.snapshot())
    return SearchResult(algo=algo, history=history, stopped=ctx.stopped, usage=snapshot, split_sizes=parts.sizes(),
                        final_scoring=final_cost)


def _final_cost(finals, before: dict | None, after: dict | None, stopped: str | None) -> dict:
    """What the final scoring cost: calls/tokens of its trials (reused ones: their recorded cost) and, with
    a usage meter, the live calls, tokens and $ this run spent on it."""
    cost = {"trials": len(finals), "calls": sum(t.calls for t in finals), "tokens": sum(t.tokens for t in finals),
            "after_budget_stop": stopped is not None and not stopped.startswith("trial")}
    if before is not None and after is not None:
        cost["live_calls"] = after["live_calls"] - before["live_calls"]
        cost["live_tokens"] = (after["live_prompt_tokens"] + after["live_completion_tokens"]
                               - before["live_prompt_tokens"] - before["live_completion_tokens"])
        cost["dollars"] = round(after["dollars"] - before["dollars"], 6)
    return cost


def _score_final(ctx: SearchContext, test_objective: Objective, seed: str) -> list:
    """The seed instruction on validation at the best's r (it may not have been a trial), then best and
    seed on the whole test split. The first reads of the test split's gold labels happen here."""
    best = ctx.history.best_at_full_resource()
    if best is None:
        return []
    return ctx.score_final([("seed_val", "seed", seed, ctx.objective, best.r),
                     ("best_test", "best", best.instruction, test_objective, test_objective.max_r),
                     ("seed_test", "seed", seed, test_objective, test_objective.max_r)])
