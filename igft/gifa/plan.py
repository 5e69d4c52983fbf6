"""`igft label --plan`: what a GIFA run will ask of its endpoints, before any call is made.

Token counts are estimated from text length (about 4 characters per token, as OpenAI documents for
English), so the figures are estimates; calls are exact for the conversations left to label. Prices
come from the usage meter's price table (`igft.llm.usage.DEFAULT_PRICES`, `register_price`).
"""
from __future__ import annotations

from dataclasses import dataclass

from igft.data import Dataset
from igft.gifa.prompts import KnownIntent, build_labeling_messages
from igft.llm.usage import UsageMeter

CHARS_PER_TOKEN = 4
TOKENS_PER_INTENT_LINE = 8   # "- some_intent_name" plus its line break
TOKENS_PER_ANSWER_LINE = 8   # "3. provide_order_number"


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // CHARS_PER_TOKEN)


@dataclass(frozen=True)
class LabelingPlan:
    conversations: int          # left to label
    calls: int                  # one per conversation when every first answer parses
    max_calls: int              # every attempt of every conversation used
    prompt_tokens: int
    max_prompt_tokens: int
    completion_tokens: int
    max_completion_tokens: int
    embedded_texts: int
    embedding_tokens: int
    dollars: float
    max_dollars: float
    unpriced: tuple[str, ...]

    def lines(self, lm: str, embedder: str) -> list[str]:
        price_note = f"; no price known for {', '.join(self.unpriced)} (counted as $0)" if self.unpriced else ""
        return [
            f"plan: {self.conversations} conversation(s) to label with {lm}, embeddings with {embedder}",
            f"  chat calls   {self.calls} expected, at most {self.max_calls} (every retry used)",
            f"  tokens       ~{self.prompt_tokens}+{self.completion_tokens} expected, at most "
            f"~{self.max_prompt_tokens}+{self.max_completion_tokens}",
            f"  embeddings   {self.embedded_texts} text(s), ~{self.embedding_tokens} tokens",
            f"  est. cost    ${self.dollars:.4f} expected, at most ${self.max_dollars:.4f}{price_note}",
            "no call was made; rerun without --plan to label",
        ]


def plan_labeling(dataset: Dataset, config, lm_model: str, embedder_model: str, *, skip: set[int] = frozenset(),
                  embed: bool = True) -> LabelingPlan:
    """Estimate a run over the conversations of `dataset` not in `skip` (already finished ones)."""
    meter = UsageMeter()
    todo = [c for c in dataset.conversations if c.number not in skip]
    attempts = config.max_retries + 1
    prompt = max_prompt = completion = max_completion = 0
    for conversation in todo:
        n = len(conversation.messages)
        # The known-intent section lists at most top_k x n names (fewer once intents repeat).
        known = [KnownIntent(f"intent_{i}") for i in range(min(config.top_k * n, 3 * config.top_k))]
        messages = build_labeling_messages(config.instruction, conversation, config.method, known,
                                           worked_example=config.worked_example)
        tokens = sum(estimate_tokens(m["content"]) for m in messages)
        if config.method == "example":
            tokens += len(known) * config.top_n * 20
        prompt += tokens
        max_prompt += tokens * attempts
        expected = min(config.request_max_tokens(n), TOKENS_PER_ANSWER_LINE * n)
        completion += expected
        max_completion += config.request_max_tokens(n) * attempts
    texts = [m.line for m in dataset.messages] if embed else []
    embedding_tokens = sum(estimate_tokens(t) for t in texts)
    dollars = meter.cost(lm_model, prompt, completion) + meter.cost(embedder_model, embedding_tokens, 0)
    max_dollars = meter.cost(lm_model, max_prompt, max_completion) + meter.cost(embedder_model, embedding_tokens, 0)
    return LabelingPlan(len(todo), len(todo), len(todo) * attempts, prompt, max_prompt, completion, max_completion,
                        len(texts), embedding_tokens, round(dollars, 6), round(max_dollars, 6),
                        tuple(sorted(meter.unpriced_models)))
