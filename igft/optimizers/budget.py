"""Search budgets over LLM calls, tokens, dollars and trials, and the per-trial LM meter.

Two layers, one meaning per name:
- `LiveBudget` (--max-calls / --max-tokens / --max-dollars of `igft optimize`, the same flags as
  `igft label`): live calls, live tokens and estimated $ counted over every run of the job in the output
  folder (the usage ledger, usage.json), enforced by the client layer before each live call. Replayed
  and cached calls cost nothing.
- `SearchBudget`: the trial cap (--max-trials), and, for library callers of `run_search` with a bare
  LM, caps on every call one search makes (replayed ones too, in this process only).
Every LM call of a search goes through a `MeteredLM` that charges one trial's `TrialCost` and the
`SearchBudget`. When either budget is spent, the next call raises; the search drops the trial in
flight and stops, so the history holds only fully scored trials. The final scoring after the search
(seed on validation, best and seed on test) is charged to the same meters but may run past the caps,
so a stopped search still has its test figures (result.json `final_scoring` says what it cost).
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator

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


@dataclass(frozen=True)
class LiveBudget:
    """Caps of one job in an output folder, the same in `igft label` and `igft optimize`; None = unlimited."""

    max_calls: int | None = field(default=None, metadata={
        "help": "stop cleanly before the live LLM call that would exceed this many live (not replayed, not cached) "
                "chat calls, counted over every run of this job in --out (usage.json; a rerun continues the count, "
                "--no-resume starts from zero); the final test scoring is charged too and may run past it"})
    max_tokens: int | None = field(default=None, metadata={
        "help": "the same for live prompt + completion tokens (live embedding tokens estimated at 4 characters each)"})
    max_dollars: float | None = field(default=None, metadata={
        "help": "the same for the estimated US dollars of live calls (igft.llm.usage price table)"})

    def client_budget(self):
        """The client-layer Budget for build_lm(budget=...), or None when no cap is set."""
        return live_budget(self.max_calls, self.max_tokens, self.max_dollars)


@dataclass
class SearchBudget:
    """Limits of one `run_search` call; None means unlimited.

    Only `max_trials` is an `igft optimize` option. The call / token / dollar caps here are for library
    callers with a bare LM: they count every call this search makes, replayed ones too (the CLI's caps
    are a LiveBudget instead). `dollars_fn` returns the dollars spent so far; without it, `max_dollars`
    is checked against `prompt/completion_price_per_1k`.
    """

    max_calls: int | None = field(default=None, metadata={"doc": "library: stop after this many LLM calls of this search (replayed ones too)"})
    max_tokens: int | None = field(default=None, metadata={"doc": "library: stop after this many prompt+completion tokens of this search"})
    max_dollars: float | None = field(default=None, metadata={"doc": "library: stop after this many estimated dollars"})
    max_trials: int | None = field(default=None, metadata={"help": "stop after this many scored search trials (reused trials of a resumed run count)"})
    prompt_price_per_1k: float = field(default=0.0, metadata={"doc": "$ per 1k prompt tokens when no dollars_fn"})
    completion_price_per_1k: float = field(default=0.0, metadata={"doc": "$ per 1k completion tokens when no dollars_fn"})
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
    """Wraps an LM for one trial: counts that trial's calls and tokens and enforces the search budget
    (with enforce=False it only charges it: the final scoring)."""

    def __init__(self, lm, cost: TrialCost, budget: SearchBudget | None, enforce: bool = True):
        self.lm = lm
        self.model = getattr(lm, "model", "lm")
        self.cost = cost
        self.budget = budget
        self.enforce = enforce
        self._lock = threading.Lock()  # a labeler may call from several threads (GIFA window > 1)

    def complete(self, request: CompletionRequest) -> Completion:
        if self.budget is not None and self.enforce:
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


def carry_over_usage(out_dir, meter, *, mode: str | None = None, command: str = "optimize", new_job: bool = False):
    """Make `meter` count what earlier runs of this job in `out_dir` spent, and persist this run's spend as it goes.

    Returns the folder's `igft.llm.ledger.UsageLedger`: pass `LiveBudget.client_budget()` (or
    `live_budget(...)`) to `build_lm(budget=...)`, and call `ledger.finish()` at the end. `igft label`
    uses the same ledger, so --max-calls / --max-tokens / --max-dollars mean the same in both.
    `new_job` (a --no-resume run) starts the count from zero; earlier entries stay in usage.json.
    """
    from igft.llm.ledger import UsageLedger

    ledger = UsageLedger(out_dir, command, mode, new_job=new_job)
    ledger.attach(meter)
    return ledger


@contextlib.contextmanager
def past_live_caps(*clients) -> Iterator[None]:
    """Lift the client-layer Budget of these metered clients for a while (the final scoring); they still
    count every call into their UsageMeter, so the ledger holds what the lifted calls cost."""
    lifted = [(c, c.budget) for c in clients if c is not None and getattr(c, "budget", None) is not None
              and hasattr(c, "meter")]
    for client, _ in lifted:
        client.budget = None
    try:
        yield
    finally:
        for client, budget in lifted:
            client.budget = budget


def live_budget(max_calls: int | None = None, max_tokens: int | None = None, max_dollars: float | None = None):
    """The client-layer Budget of these caps (live calls, tokens, $ over every run of an attached ledger),
    or None when none is set."""
    from igft.llm.usage import Budget

    if max_calls is None and max_tokens is None and max_dollars is None:
        return None
    return Budget(max_calls=max_calls, max_tokens=max_tokens, max_dollars=max_dollars)
