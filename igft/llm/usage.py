"""Usage metering and budgets for every model call.

`MeteredLM` / `MeteredEmbedder` wrap any LM / Embedder (usually a cassette wrapper), count every call as
live or cached, estimate dollars from a per-model price table, check a `Budget` before each live call and
log every prompt and response at DEBUG (enable with `logging.getLogger("igft.llm").setLevel("DEBUG")`).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from igft.errors import IgftError
from igft.llm.base import LM, Completion, CompletionRequest, Embedder

logger = logging.getLogger(__name__)

# US dollars per million tokens: (prompt, completion). Published list prices (2025); estimates only.
# Extend with `register_price(...)` or `UsageMeter(prices={...})`. Local models cost nothing.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "gpt-3.5-turbo": (0.50, 1.50),
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.0),
    "text-embedding-ada-002": (0.10, 0.0),
}
_FREE_PREFIXES = ("local:", "hf:", "st:", "scripted", "hashing")
_price_lock = threading.Lock()


def register_price(model: str, prompt_per_million: float, completion_per_million: float = 0.0) -> None:
    """Add or override a model's price (USD per million prompt / completion tokens) for all meters."""
    with _price_lock:
        DEFAULT_PRICES[model] = (float(prompt_per_million), float(completion_per_million))


def _lookup_price(prices: dict[str, tuple[float, float]], model: str) -> tuple[float, float] | None:
    if model.startswith(_FREE_PREFIXES):
        return (0.0, 0.0)
    if model in prices:
        return prices[model]
    bare = model.split(":")[-1]  # 'openai:gpt-4o' and 'openai-compatible:gpt-4o' -> 'gpt-4o'
    if bare in prices:
        return prices[bare]
    # Dated snapshots ('gpt-4o-2024-08-06') take the price of their longest listed prefix.
    matches = [name for name in prices if bare.startswith(name + "-")]
    return prices[max(matches, key=len)] if matches else None


class BudgetExceeded(IgftError):
    """A Budget was spent; the run stops before the next live call."""


@dataclass(frozen=True)
class Budget:
    """Caps on live (non-cached) usage. None means unlimited."""

    max_calls: int | None = field(default=None, metadata={"help": "maximum live chat calls (cached replays are free); with a UsageLedger, over all runs of the job"})
    max_tokens: int | None = field(default=None, metadata={"help": "maximum live prompt + completion tokens (embedding tokens estimated)"})
    max_dollars: float | None = field(default=None, metadata={"help": "maximum estimated live spend in USD"})


class UsageMeter:
    """Thread-safe counters of model usage; one meter may be shared by several clients."""

    def __init__(self, prices: dict[str, tuple[float, float]] | None = None):
        self.prices = dict(DEFAULT_PRICES)
        self.prices.update(prices or {})
        self._lock = threading.Lock()
        self.calls = self.live_calls = self.cached_calls = 0
        self.prompt_tokens = self.completion_tokens = 0
        self.live_prompt_tokens = self.live_completion_tokens = 0
        self.embedding_calls = self.embedded_texts = self.live_embedded_texts = 0
        self.dollars = 0.0
        self.unpriced_models: set[str] = set()
        self._in_flight = 0  # live calls admitted by the budget but not yet recorded
        # What earlier runs of the same job spent (a UsageLedger sets it): budgets count it too.
        self.baseline: dict = {"live_calls": 0, "live_tokens": 0, "dollars": 0.0}
        # Called with the meter after every recorded live call (a UsageLedger saves itself here).
        self.listeners: list = []

    def _notify(self, live: bool) -> None:
        if live:
            for listener in list(self.listeners):
                listener(self)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        price = _lookup_price(self.prices, model)
        if price is None:
            self.unpriced_models.add(model)
            return 0.0
        return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6

    def record(self, model: str, completion: Completion) -> None:
        with self._lock:
            self.calls += 1
            self.prompt_tokens += completion.prompt_tokens
            self.completion_tokens += completion.completion_tokens
            if completion.cached:
                self.cached_calls += 1
            else:
                self.live_calls += 1
                self.live_prompt_tokens += completion.prompt_tokens
                self.live_completion_tokens += completion.completion_tokens
                self.dollars += self.cost(model, completion.prompt_tokens, completion.completion_tokens)
        self._notify(not completion.cached)

    def record_embedding(self, model: str, n_texts: int, live_texts: int, live_tokens: int) -> None:
        with self._lock:
            self.embedding_calls += 1
            self.embedded_texts += n_texts
            self.live_embedded_texts += live_texts
            if live_texts:
                self.live_prompt_tokens += live_tokens
                self.dollars += self.cost(model, live_tokens, 0)
        self._notify(bool(live_texts))

    def admit(self, budget: Budget | None, what: str) -> None:
        """Raise BudgetExceeded if a new live call would break `budget`; otherwise reserve it."""
        with self._lock:
            if budget is not None:
                base = self.baseline
                live = base["live_calls"] + self.live_calls + self._in_flight
                tokens = base["live_tokens"] + self.live_prompt_tokens + self.live_completion_tokens
                dollars = base["dollars"] + self.dollars
                if budget.max_calls is not None and live >= budget.max_calls:
                    reason, flag = f"{live} live calls of max_calls={budget.max_calls}", "--max-calls"
                elif budget.max_tokens is not None and tokens >= budget.max_tokens:
                    reason, flag = f"{tokens} live tokens of max_tokens={budget.max_tokens}", "--max-tokens"
                elif budget.max_dollars is not None and dollars >= budget.max_dollars:
                    reason, flag = f"${dollars:.4f} of max_dollars={budget.max_dollars}", "--max-dollars"
                else:
                    reason = None
                if reason:
                    earlier = " (counting earlier runs in this output folder)" if any(base.values()) else ""
                    raise BudgetExceeded(
                        f"budget spent before {what}: {reason}{earlier}; everything done so far is kept: rerun "
                        f"the same command with a higher {flag} to continue")
            self._in_flight += 1

    def release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def snapshot(self) -> dict:
        """A JSON-ready copy of the counters."""
        with self._lock:
            return {
                "calls": self.calls, "live_calls": self.live_calls, "cached_calls": self.cached_calls,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "tokens": self.prompt_tokens + self.completion_tokens,
                "live_prompt_tokens": self.live_prompt_tokens, "live_completion_tokens": self.live_completion_tokens,
                "embedding_calls": self.embedding_calls, "embedded_texts": self.embedded_texts,
                "live_embedded_texts": self.live_embedded_texts,
                "dollars": round(self.dollars, 6), "unpriced_models": sorted(self.unpriced_models),
            }


class MeteredLM:
    """Counts every call of `inner` into `meter`, enforces `budget` on live calls, logs prompts at DEBUG."""

    def __init__(self, inner: LM, meter: UsageMeter | None = None, budget: Budget | None = None):
        self.inner = inner
        self.model = inner.model
        self.meter = meter if meter is not None else UsageMeter()
        self.budget = budget
        # A cassette wrapper tells us when a call goes live, so cached answers are never blocked.
        self._hooked = hasattr(inner, "before_live")
        if self._hooked:
            inner.before_live = self._admit  # type: ignore[attr-defined]
        self._local = threading.local()

    def _admit(self, request: CompletionRequest) -> None:
        self.meter.admit(self.budget, f"a live call to {self.model}")
        self._local.admitted = True

    def complete(self, request: CompletionRequest) -> Completion:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s prompt: %s", self.model, request.to_dict())
        self._local.admitted = False
        if not self._hooked:
            self._admit(request)
        try:
            completion = self.inner.complete(request)
        finally:
            if self._local.admitted:
                self.meter.release()
        self.meter.record(self.model, completion)
        logger.debug("%s response (%s, %d+%d tokens): %s", self.model, "cached" if completion.cached else "live",
                     completion.prompt_tokens, completion.completion_tokens, completion.text)
        return completion


def _estimate_tokens(texts: Sequence[str]) -> int:
    # Embedding APIs bill by tokens; the Embedder protocol returns only vectors, so estimate ~4 chars/token.
    return sum(max(1, len(t) // 4) for t in texts)


class MeteredEmbedder:
    """Counts embedding calls and texts (live vs cached) and enforces `budget` on live batches."""

    def __init__(self, inner: Embedder, meter: UsageMeter | None = None, budget: Budget | None = None):
        self.inner = inner
        self.model = inner.model
        self.meter = meter if meter is not None else UsageMeter()
        self.budget = budget
        self._hooked = hasattr(inner, "before_live")
        if self._hooked:
            inner.before_live = self._on_live  # type: ignore[attr-defined]
        self._local = threading.local()

    def _on_live(self, texts: list[str]) -> None:
        self.meter.admit(self.budget, f"embedding {len(texts)} text(s) with {self.model}")
        self.meter.release()  # embedding batches are accounted when they return, not reserved
        self._local.live = list(texts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self._local.live = []
        if not self._hooked:
            self._on_live(list(texts))
        vectors = self.inner.embed(texts)
        live = self._local.live
        self.meter.record_embedding(self.model, len(texts), len(live), _estimate_tokens(live))
        logger.debug("%s embedded %d text(s), %d live", self.model, len(texts), len(live))
        return vectors
