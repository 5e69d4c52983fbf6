"""Search budgets over LLM calls, tokens, dollars and trials, and the per-trial LM meter.

Every LM call of a search goes through a `MeteredLM` that charges one trial's `TrialCost` and the
search-wide `SearchBudget`. When the budget is spent, the next call raises `BudgetExhausted`; the
search drops the trial in flight and stops, so the history holds only fully scored trials.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

from igft.errors import IgftError
from igft.llm.base import Completion, CompletionRequest


class BudgetExhausted(IgftError):
    """The search budget is spent (raised inside a trial; the search catches it and stops cleanly)."""


def budget_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "budget spent": ours, and the client layer's BudgetExceeded (live-call caps)."""
    try:
        from igft.llm.usage import BudgetExceeded
    except ImportError:
        return (BudgetExhausted,)
    return (BudgetExhausted, BudgetExceeded)


@dataclass
class SearchBudget:
    """Limits of one search; None means unlimited.

    `dollars_fn` returns the dollars spent so far (e.g. a factory UsageMeter's snapshot()["dollars"]);
    without it, `max_dollars` is checked against `prompt/completion_price_per_1k`.
    """

    max_calls: int | None = field(default=None, metadata={"help": "stop after this many LLM calls (meta-prompts + GIFA)"})
    max_tokens: int | None = field(default=None, metadata={"help": "stop after this many prompt+completion tokens"})
    max_dollars: float | None = field(default=None, metadata={"help": "stop after this many estimated dollars"})
    max_trials: int | None = field(default=None, metadata={"help": "stop after this many scored trials"})
    prompt_price_per_1k: float = field(default=0.0, metadata={"help": "$ per 1k prompt tokens when no dollars_fn"})
    completion_price_per_1k: float = field(default=0.0, metadata={"help": "$ per 1k completion tokens when no dollars_fn"})
    dollars_fn: Callable[[], float] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.trials = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def dollars(self) -> float:
        if self.dollars_fn is not None:
            return float(self.dollars_fn())
        return (self.prompt_tokens * self.prompt_price_per_1k + self.completion_tokens * self.completion_price_per_1k) / 1000

    def charge(self, completion: Completion) -> None:
        with self._lock:
            self.calls += 1
            self.prompt_tokens += completion.prompt_tokens
            self.completion_tokens += completion.completion_tokens

    def add_spent(self, calls: int, tokens: int) -> None:
        """Count the recorded cost of a trial reused from an earlier run of the same search."""
        with self._lock:
            self.calls += calls
            self.prompt_tokens += tokens

    def count_trial(self) -> None:
        with self._lock:
            self.trials += 1

    def exhausted_reason(self) -> str | None:
        """Why no further LLM call / trial may start, or None."""
        if self.max_calls is not None and self.calls >= self.max_calls:
            return f"LLM-call budget of {self.max_calls} spent"
        if self.max_tokens is not None and self.tokens >= self.max_tokens:
            return f"token budget of {self.max_tokens} spent"
        if self.max_dollars is not None and self.dollars >= self.max_dollars:
            return f"dollar budget of {self.max_dollars} spent"
        if self.max_trials is not None and self.trials >= self.max_trials:
            return f"trial budget of {self.max_trials} spent"
        return None

    def check(self) -> None:
        reason = self.exhausted_reason()
        if reason:
            raise BudgetExhausted(reason)

    def snapshot(self) -> dict:
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "tokens": self.tokens, "dollars": round(self.dollars, 6), "trials": self.trials}


@dataclass
class TrialCost:
    calls: int = 0
    tokens: int = 0
    live_calls: int = 0


class MeteredLM:
    """Wraps an LM for one trial: counts that trial's calls and tokens and enforces the search budget."""

    def __init__(self, lm, cost: TrialCost, budget: SearchBudget | None):
        self.lm = lm
        self.model = getattr(lm, "model", "lm")
        self.cost = cost
        self.budget = budget
        self._lock = threading.Lock()  # a labeler may call from several threads (GIFA window > 1)

    def complete(self, request: CompletionRequest) -> Completion:
        if self.budget is not None:
            reason = self.budget.exhausted_reason()
            # The trial budget only stops new trials; calls/tokens/$ stop calls too.
            if reason and not reason.startswith("trial"):
                raise BudgetExhausted(reason)
        completion = self.lm.complete(request)
        with self._lock:
            self.cost.calls += 1
            self.cost.tokens += completion.prompt_tokens + completion.completion_tokens
            self.cost.live_calls += 0 if completion.cached else 1
        if self.budget is not None:
            self.budget.charge(completion)
        return completion


def carry_over_usage(out_dir, meter, *, mode: str | None = None, command: str = "optimize"):
    """Make `meter` count what earlier runs in `out_dir` spent, and persist this run's spend as it goes.

    Returns the folder's `igft.llm.ledger.UsageLedger`: pass `ledger.total_dollars` as a SearchBudget's
    `dollars_fn`, `live_budget(...)` to `build_lm(budget=...)`, and call `ledger.finish()` at the end.
    `igft label` uses the same ledger, so --max-calls / --max-tokens / --max-dollars mean the same in both.
    """
    from igft.llm.ledger import UsageLedger

    ledger = UsageLedger(out_dir, command, mode)
    ledger.attach(meter)
    return ledger


def live_budget(max_calls: int | None = None, max_tokens: int | None = None, max_dollars: float | None = None):
    """The client-layer Budget of these caps (live calls, tokens, $ over every run of an attached ledger),
    or None when none is set."""
    from igft.llm.usage import Budget

    if max_calls is None and max_tokens is None and max_dollars is None:
        return None
    return Budget(max_calls=max_calls, max_tokens=max_tokens, max_dollars=max_dollars)
