"""Every fault of a live endpoint, injected by igft's own loopback server (127.0.0.1, started and stopped here).

Retried with backoff: a truncated JSON body, an empty body, a connection reset, a read timeout, 429/5xx.
Not retried: a 4xx for one request (the labeler records that conversation and goes on), a refused key,
a 404 (a base URL without /v1 is named). An unreachable server is reported within seconds.
"""
from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from igft.cli import build_parser
from igft.data import Conversation, Dataset, Message
from igft.gifa import GifaConfig, label_dataset
from igft.llm import CompletionRequest, HashingEmbedder, ask, build_lm
from igft.llm.concurrency import AdaptiveLimit
from igft.llm.errors import EndpointUnreachable, LLMRequestError, RequestRejected
from igft.llm.loopback_server import LoopbackServer, free_port
from igft.llm.openai_backend import UNREACHABLE_GIVE_UP, OpenAIChatLM, OpenAIEmbedder


class SleepRecorder:
    def __init__(self):
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def server():
    with LoopbackServer() as running:
        yield running


def chat(server, sleep=None, **kw):
    return OpenAIChatLM("m", base_url=server.url, api_key="sk-test", sleep=sleep or SleepRecorder(), backoff=0.1, **kw)


@pytest.mark.parametrize("fault", ["malformed", "empty", "reset"])
def test_broken_bodies_and_resets_are_retried_with_backoff(server, fault):
    server.faults = [fault, fault]
    sleep = SleepRecorder()
    lm = chat(server, sleep)
    completion = ask(lm, "hi")
    assert completion.text == "echo: hi"
    assert server.count("/chat/completions") == 3 and lm.retries == 2
    assert sleep.waits == [0.1, 0.2]  # exponential backoff, like 5xx


def test_read_timeout_is_retried_and_request_timeout_is_honoured(server):
    server.faults = ["hang"]
    server.hang_seconds = 3.0
    lm = chat(server, timeout=0.3)
    assert ask(lm, "hi").text == "echo: hi"
    assert lm.retries == 1 and server.count("/chat/completions") == 2
    assert lm.timeout == 0.3


def test_a_fault_on_every_attempt_gives_up_with_the_real_flags(server):
    server.faults = ["malformed"] * 3
    lm = chat(server, max_attempts=3)
    with pytest.raises(LLMRequestError) as info:
        ask(lm, "hi")
    message = str(info.value)
    assert "after 3 attempt(s)" in message and "malformed" in message and "\n" not in message
    assert "--max-attempts" in message and server.count("/chat/completions") == 3


def test_a_2xx_without_choices_is_retried(server):
    calls = []

    def no_choices_once(path, body):
        calls.append(path)
        return "http:200:" if len(calls) == 1 else None

    server.fault_for = no_choices_once
    lm = chat(server)
    assert ask(lm, "hi").text == "echo: hi" and lm.retries == 1


def test_non_retryable_4xx_carries_status_and_server_message(server):
    server.faults = ["http:400:This model's maximum context length is 8192 tokens"]
    sleep = SleepRecorder()
    lm = chat(server, sleep)
    with pytest.raises(RequestRejected) as info:
        ask(lm, "hi")
    assert info.value.status == 400 and "maximum context length" in info.value.server_message
    assert sleep.waits == [] and server.count("/chat/completions") == 1


def test_404_without_v1_names_the_fix(server):
    lm = OpenAIChatLM("m", base_url=server.root_url, api_key="sk-test", sleep=SleepRecorder())
    with pytest.raises(LLMRequestError, match="add it") as info:
        ask(lm, "hi")
    assert "/v1" in str(info.value) and not isinstance(info.value, RequestRejected)


def test_refused_key_names_the_api_key_env_flag(server):
    server.faults = ["http:401:bad key"]
    with pytest.raises(LLMRequestError, match="--api-key-env") as info:
        ask(chat(server), "hi")
    assert "sk-test" not in str(info.value)


def test_unreachable_server_is_reported_within_seconds():
    sleep = SleepRecorder()
    lm = OpenAIChatLM("m", base_url=f"http://127.0.0.1:{free_port()}/v1", api_key="sk-test", sleep=sleep,
                      max_attempts=50)
    with pytest.raises(EndpointUnreachable, match="cannot connect to") as info:
        ask(lm, "hi")
    # The backoff schedule is cut short: the waits of all attempts stay under the give-up bound (8 s),
    # far below what 50 attempts of exponential backoff would take.
    assert sum(sleep.waits) <= UNREACHABLE_GIVE_UP and len(sleep.waits) < 10
    assert "start the server" in str(info.value)


def test_embedding_faults_are_retried_and_batches_go_out_in_parallel():
    with LoopbackServer(latency=0.2) as server:
        server.faults = ["empty"]
        embedder = OpenAIEmbedder("e", base_url=server.url, api_key="sk-test", sleep=SleepRecorder(), batch_size=2,
                                  max_concurrency=4)
        vectors = embedder.embed([f"text {i}" for i in range(8)])
        assert vectors.shape == (8, server.embed_dim)
        assert server.count("/embeddings") == 5 and embedder.retries == 1
        assert server.max_in_flight >= 2  # four batches, sent together


def test_adaptive_limit_halves_once_per_burst_and_grows_back():
    limit = AdaptiveLimit(8)
    generations = [limit.acquire() for _ in range(8)]
    for g in generations[:4]:
        limit.on_429(g, None)  # four 429s from requests sent under the same limit: one halving
    assert limit.limit == 4 and limit.decreases == 1
    for _ in range(8):
        limit.release()
    for _ in range(4 + 5 + 6):
        limit.on_success()
    assert limit.limit == 7  # one more slot per `limit` successes, back towards the level that failed


def test_adaptive_limit_pauses_new_requests_for_retry_after():
    now = [100.0]
    limit = AdaptiveLimit(2, clock=lambda: now[0])
    generation = limit.acquire()
    limit.release()
    limit.on_429(generation, 5.0)
    got = []
    thread = threading.Thread(target=lambda: got.append(limit.acquire()))
    thread.start()
    thread.join(timeout=0.3)
    assert thread.is_alive() and not got  # paused until t=105
    assert limit.acquire(retrying=True) == 1  # the retry that slept its Retry-After goes through
    limit.release()
    now[0] = 106.0
    thread.join(timeout=3)
    assert got == [1]


def test_fewer_server_slots_than_concurrency_backs_off():
    with LoopbackServer(latency=0.05, slots=2, retry_after_ms=50) as server:
        lm = OpenAIChatLM("m", base_url=server.url, api_key="sk-test", max_concurrency=8)
        with ThreadPoolExecutor(max_workers=8) as pool:
            texts = list(pool.map(lambda i: ask(lm, f"q{i}").text, range(40)))
        assert texts == [f"echo: q{i}" for i in range(40)]
        assert lm.limit.limit <= 4 and lm.limit.decreases >= 1
        assert server.statuses[429] == lm.rate_limited < 40 // 4


def tiny_dataset(n=6) -> Dataset:
    convs = []
    for c in range(n):
        msgs = (Message(c, 0, "customer", f"hello parcel {c} missing"), Message(c, 1, "assistant", "sorry, order number?"),
                Message(c, 2, "customer", "it is 1234"))
        convs.append(Conversation(c, msgs))
    return Dataset(convs, "tiny")


def test_rejected_conversation_is_recorded_with_status_and_the_run_goes_on(server, tmp_path):
    def reject_parcel_2(path, body):
        text = body.get("messages", [{}])[-1].get("content", "")
        return "http:400:maximum context length exceeded" if "parcel 2 missing" in text else None

    server.fault_for = reject_parcel_2
    lm = build_lm(f"openai-compatible:{server.url}:m", sleep=SleepRecorder())
    result = label_dataset(tiny_dataset(), lm, HashingEmbedder(), GifaConfig(max_retries=2), out_dir=tmp_path,
                           progress=False)
    assert [f["conversation_number"] for f in result.failures] == [2]
    failure = result.failures[0]
    assert failure["status"] == 400 and "maximum context length exceeded" in failure["reason"]
    assert failure["attempts"] == 1  # the same prompt again would be refused again
    assert len(result.labels) == 5 * 3


def test_messages_name_only_flags_that_exist():
    """Every --flag an error message of the client layer or `igft label` suggests is an igft label flag."""
    root = Path(__file__).resolve().parent.parent / "igft"
    sources = [*(p for p in (root / "llm").glob("*.py") if p.name != "loopback_server.py"),  # has its own CLI
               root / "gifa" / "run.py", root / "gifa" / "labeler.py",
               root / "cli" / "label.py"]
    mentioned, for_optimize = set(), set()
    for path in sources:
        for line in path.read_text().splitlines():
            if "pip " not in line:  # pip's own flags in install hints
                # A flag written right after `optimize` (e.g. `igft optimize --no-resume`) is optimize's.
                for command, flag in re.findall(r"(optimize )?(--[a-z][a-z0-9-]+)", line):
                    (for_optimize if command else mentioned).add(flag)
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    flags = lambda name: {option for action in commands[name]._actions for option in action.option_strings}  # noqa: E731
    assert mentioned - flags("label") == set()
    assert for_optimize - flags("optimize") == set()
