"""Usage meter, price table and Budget (hermetic)."""
from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from igft.errors import IgftError
from igft.llm import (Budget, BudgetExceeded, Completion, CompletionRequest, HashingEmbedder, MeteredEmbedder,
                      MeteredLM, ScriptedLM, UsageMeter, ask, build_embedder, build_lm, register_price)
from igft.llm.usage import DEFAULT_PRICES


def _words(request: CompletionRequest) -> str:
    return "one two three"


def test_meter_counts_live_and_cached_calls_and_tokens(tmp_path):
    cassette = tmp_path / "c.jsonl"
    meter = UsageMeter()
    lm = build_lm("scripted", mode="record", cassette=cassette, usage=meter, script=_words)
    ask(lm, "alpha beta")          # live: 2 prompt words, 3 completion words
    ask(lm, "gamma delta epsilon")  # live: 3 + 3
    replay = build_lm("scripted", mode="replay", cassette=cassette, usage=meter)
    ask(replay, "alpha beta")       # cached
    snap = meter.snapshot()
    assert (snap["calls"], snap["live_calls"], snap["cached_calls"]) == (3, 2, 1)
    assert (snap["prompt_tokens"], snap["completion_tokens"], snap["tokens"]) == (7, 9, 16)
    assert (snap["live_prompt_tokens"], snap["live_completion_tokens"]) == (5, 6)
    assert snap["dollars"] == 0.0 and snap["unpriced_models"] == []
    json.dumps(snap)  # JSON-ready for stats.json


def test_dollar_estimate_uses_an_extensible_price_table():
    meter = UsageMeter(prices={"my-model": (1.0, 2.0)})
    meter.record("openai:gpt-4o", Completion("x", prompt_tokens=1_000_000, completion_tokens=100_000))
    assert meter.dollars == pytest.approx(2.50 + 1.00)
    meter.record("openai:gpt-4o-2024-08-06", Completion("x", prompt_tokens=1_000_000))  # dated snapshot
    assert meter.dollars == pytest.approx(6.00)
    meter.record("openai-compatible:my-model", Completion("x", prompt_tokens=500_000, completion_tokens=500_000))
    assert meter.dollars == pytest.approx(7.50)
    meter.record("openai:gpt-4o", Completion("x", prompt_tokens=10**6, completion_tokens=10**6, cached=True))
    assert meter.dollars == pytest.approx(7.50)  # cached answers are free
    meter.record("openai:mystery", Completion("x", prompt_tokens=10))
    assert meter.snapshot()["unpriced_models"] == ["openai:mystery"]
    meter.record("local:smollm2", Completion("x", prompt_tokens=10**6))
    assert meter.snapshot()["unpriced_models"] == ["openai:mystery"]  # local models are known to be free
    try:
        register_price("brand-new-model", 4.0, 8.0)
        fresh = UsageMeter()
        fresh.record("openai:brand-new-model", Completion("x", prompt_tokens=250_000, completion_tokens=125_000))
        assert fresh.dollars == pytest.approx(2.0)
    finally:
        DEFAULT_PRICES.pop("brand-new-model", None)


def test_budget_max_calls_stops_cleanly_and_keeps_the_recording(tmp_path):
    cassette = tmp_path / "c.jsonl"
    lm = build_lm("scripted", mode="record", cassette=cassette, budget=Budget(max_calls=2), script=_words)
    ask(lm, "q1")
    ask(lm, "q2")
    with pytest.raises(BudgetExceeded) as info:
        ask(lm, "q3")
    assert isinstance(info.value, IgftError) and "\n" not in str(info.value)
    assert "2 live calls of max_calls=2" in str(info.value)
    assert len(cassette.read_text().splitlines()) == 2  # what was paid for is on disk
    # Cached answers stay free: a client on the same spent meter and budget still serves recorded requests.
    again = build_lm("scripted", mode="record", cassette=cassette, usage=lm.meter, budget=Budget(max_calls=2),
                     script=_words)
    assert ask(again, "q1").cached and ask(again, "q2").cached
    with pytest.raises(BudgetExceeded):
        ask(again, "q3")
    snap = lm.meter.snapshot()
    assert (snap["live_calls"], snap["cached_calls"]) == (2, 2)
    # Resuming with a fresh budget continues where the run stopped.
    resumed = build_lm("scripted", mode="record", cassette=cassette, budget=Budget(max_calls=1), script=_words)
    assert [ask(resumed, q).cached for q in ["q1", "q2", "q3"]] == [True, True, False]


def test_budget_tokens_and_dollars():
    lm = MeteredLM(ScriptedLM(_words), budget=Budget(max_tokens=10))
    ask(lm, "a b c")  # 3 + 3 tokens
    ask(lm, "d")      # 1 + 3 -> 10 spent
    with pytest.raises(BudgetExceeded, match="10 live tokens of max_tokens=10"):
        ask(lm, "e")
    priced = ScriptedLM(lambda r: "x " * 1000, model="openai:gpt-4o")
    lm = MeteredLM(priced, UsageMeter(), budget=Budget(max_dollars=0.02))
    ask(lm, "hi")  # 1000 completion tokens = $0.01
    ask(lm, "hi")
    with pytest.raises(BudgetExceeded, match="max_dollars=0.02"):
        ask(lm, "hi")
    assert lm.meter.live_calls == 2


def test_meter_is_thread_safe_and_budget_holds_under_concurrency():
    def slow(request):
        time.sleep(0.001)
        return "fine"

    lm = MeteredLM(ScriptedLM(slow), budget=Budget(max_calls=50))
    outcomes = []
    lock = threading.Lock()

    def call(i):
        try:
            ask(lm, f"q{i}")
            result = "ok"
        except BudgetExceeded:
            result = "stopped"
        with lock:
            outcomes.append(result)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(call, range(200)))
    assert outcomes.count("ok") == 50 and outcomes.count("stopped") == 150
    snap = lm.meter.snapshot()
    assert snap["live_calls"] == snap["calls"] == 50
    assert snap["prompt_tokens"] == 50 and snap["completion_tokens"] == 50


def test_every_prompt_and_response_is_logged_at_debug(caplog):
    lm = MeteredLM(ScriptedLM(lambda r: "the secret sauce"))
    with caplog.at_level(logging.DEBUG, logger="igft.llm"):
        ask(lm, "what is in the burger?")
    text = caplog.text
    assert "what is in the burger?" in text and "the secret sauce" in text and "live" in text


def test_metered_embedder_counts_live_and_cached_texts(tmp_path):
    cassette = tmp_path / "e.jsonl"
    meter = UsageMeter()
    embedder = build_embedder("hashing", mode="record", cassette=cassette, usage=meter)
    embedder.embed(["a", "b"])
    embedder.embed(["b", "c", "a"])
    snap = meter.snapshot()
    assert (snap["embedding_calls"], snap["embedded_texts"], snap["live_embedded_texts"]) == (2, 5, 3)
    plain = MeteredEmbedder(HashingEmbedder(), UsageMeter(), budget=Budget(max_tokens=3))
    plain.embed(["abcd", "efgh", "ijkl"])  # ~1 token each by the 4-chars estimate
    with pytest.raises(BudgetExceeded):
        plain.embed(["more"])
