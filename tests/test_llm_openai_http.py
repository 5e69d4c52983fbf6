"""The OpenAI backend against a real HTTP server on 127.0.0.1 speaking the chat / embeddings wire format."""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from igft.errors import IgftError
from igft.llm import CompletionRequest, ask, build_embedder, build_lm
from igft.llm.openai_backend import LLMRequestError, MissingAPIKey, OpenAIChatLM, OpenAIEmbedder

FAKE_KEY = "sk-test-FAKE-5ecr3t-KEY-0123456789"


def _vector(text: str) -> list[float]:
    # Deterministic, unnormalised, so the client's normalisation is visible.
    return [float(len(text)), float(text.count("a")) + 1.0, 3.0]


class FakeOpenAIServer:
    """A minimal OpenAI-compatible server: answers scripted failures first, then successes."""

    def __init__(self):
        self.failures: list[tuple[int, dict]] = []  # (status, headers) popped one per request
        self.requests: list[dict] = []
        self.auth_headers: list[str | None] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = 0.0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with server.lock:
                    server.requests.append({"path": self.path, "body": body})
                    server.auth_headers.append(self.headers.get("authorization"))
                    failure = server.failures.pop(0) if server.failures else None
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if server.delay:
                        time.sleep(server.delay)
                    if failure is not None:
                        status, headers = failure
                        reply = (status, {"error": {"message": f"scripted {status}", "type": "test"}}, headers)
                    elif self.path.endswith("/chat/completions"):
                        reply = (200, server.chat_reply(body), None)
                    elif self.path.endswith("/embeddings"):
                        reply = (200, server.embedding_reply(body), None)
                    else:
                        reply = (404, {"error": {"message": "no such route"}}, None)
                finally:
                    # Out of flight before the answer leaves: once the client has it, it may send the
                    # next request at once, and counting both would overstate the concurrency.
                    with server.lock:
                        server.in_flight -= 1
                self._send(*reply)

            def _send(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def chat_reply(self, body: dict) -> dict:
        last = body["messages"][-1]["content"]
        text = f"echo: {last}"
        return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"] + "-0001",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": len(last.split()), "completion_tokens": len(text.split()),
                          "total_tokens": len(last.split()) + len(text.split())}}

    def embedding_reply(self, body: dict) -> dict:
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": _vector(t)} for i, t in enumerate(inputs)]
        data.reverse()  # servers may return rows out of order; the client must sort by index
        return {"object": "list", "data": data, "model": body["model"],
                "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}}


@pytest.fixture
def server():
    fake = FakeOpenAIServer()
    fake.thread.start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


class SleepRecorder:
    def __init__(self):
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_chat_retries_429_with_retry_after_then_500_then_succeeds(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    server.failures = [(429, {"Retry-After": "75"}), (500, {})]
    sleep = SleepRecorder()
    lm = OpenAIChatLM("tiny-chat", base_url=server.url, sleep=sleep, backoff=0.5, max_backoff=30, max_retries=3)
    completion = ask(lm, "where is my order", max_tokens=20)
    assert completion.text == "echo: where is my order"
    assert completion.prompt_tokens == 4 and completion.completion_tokens == 5
    assert completion.model == "tiny-chat-0001"
    assert len(server.requests) == 3 and lm.retries == 2
    # First wait is exactly what Retry-After asked for (even above max_backoff), then backoff 0.5 * 2**1.
    assert sleep.waits == [75.0, 1.0]
    assert server.auth_headers == [f"Bearer {FAKE_KEY}"] * 3
    body = server.requests[-1]["body"]
    assert body["model"] == "tiny-chat" and body["max_tokens"] == 20 and body["temperature"] == 0.0


def test_chat_gives_up_after_max_retries_with_one_line_error(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    server.failures = [(503, {})] * 3
    sleep = SleepRecorder()
    lm = OpenAIChatLM("tiny-chat", base_url=server.url, sleep=sleep, backoff=0.25, max_retries=2)
    with pytest.raises(LLMRequestError) as info:
        ask(lm, "hi")
    assert "after 3 attempt(s)" in str(info.value) and "\n" not in str(info.value)
    assert sleep.waits == [0.25, 0.5]


def test_non_retryable_status_fails_at_once(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    server.failures = [(400, {})]
    sleep = SleepRecorder()
    lm = OpenAIChatLM("tiny-chat", base_url=server.url, sleep=sleep)
    with pytest.raises(LLMRequestError, match="HTTP 400"):
        ask(lm, "hi")
    assert sleep.waits == [] and len(server.requests) == 1


def test_embeddings_retry_batch_sort_and_normalise(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    server.failures = [(429, {"retry-after-ms": "1500"}), (500, {})]
    sleep = SleepRecorder()
    embedder = OpenAIEmbedder("tiny-embed", base_url=server.url, sleep=sleep, backoff=0.1, batch_size=2)
    texts = ["a banana", "hello", "zz"]
    vectors = embedder.embed(texts)
    expected = np.array([_vector(t) for t in texts], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, rtol=1e-6)
    assert vectors.dtype == np.float32
    # The two batches go out in parallel, so which one meets which scripted failure varies.
    assert sorted(sleep.waits) in ([0.1, 1.5], [0.2, 1.5])
    embedding_bodies = [r["body"] for r in server.requests]
    assert sorted(b["input"] for b in embedding_bodies[-2:]) == [["a banana", "hello"], ["zz"]]  # two batches
    assert all(b["encoding_format"] == "float" for b in embedding_bodies)


def test_concurrency_cap_is_respected(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    server.delay = 0.05
    lm = OpenAIChatLM("tiny-chat", base_url=server.url, max_concurrency=2)
    with ThreadPoolExecutor(max_workers=8) as pool:
        texts = list(pool.map(lambda i: ask(lm, f"question {i}").text, range(12)))
    assert texts == [f"echo: question {i}" for i in range(12)]
    assert len(server.requests) == 12
    assert 1 <= server.max_in_flight <= 2


def test_missing_key_is_one_clear_line(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingAPIKey) as info:
        build_lm("openai:gpt-4o")
    message = str(info.value)
    assert isinstance(info.value, IgftError) and "\n" not in message
    assert "export OPENAI_API_KEY=" in message and "--mode replay" in message
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(MissingAPIKey, match="export MY_KEY="):
        build_embedder("openai:text-embedding-3-small", api_key_env="MY_KEY")


def test_record_through_factory_writes_no_secret_and_replays_without_server(server, monkeypatch, tmp_path):
    # openai-compatible reads its key from OPENAI_COMPATIBLE_API_KEY; OPENAI_API_KEY never travels there.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-MUST-NOT-LEAK")
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", FAKE_KEY)
    cassette = tmp_path / "run.jsonl"
    spec = f"openai-compatible:{server.url}:tiny-chat"
    espec = f"openai-compatible:{server.url}:tiny-embed"
    lm = build_lm(spec, mode="record", cassette=cassette)
    embedder = build_embedder(espec, mode="record", cassette=cassette)
    answers = [ask(lm, q).text for q in ["first question", "second question", "first question"]]
    vectors = embedder.embed(["a cat", "a dog", "a cat"])
    assert answers == ["echo: first question", "echo: second question", "echo: first question"]
    assert lm.meter.snapshot()["live_calls"] == 3
    assert server.auth_headers and set(server.auth_headers) == {f"Bearer {FAKE_KEY}"}
    # The embedding misses went out as one batch, deduplicated.
    assert [r["body"]["input"] for r in server.requests if r["path"].endswith("/embeddings")] == [["a cat", "a dog"]]

    text = cassette.read_text()
    port = server.url.split(":")[-1].split("/")[0]
    for secret in [FAKE_KEY, "5ecr3t", "Bearer", "uthorization", "api_key", server.url, "127.0.0.1", port]:
        assert secret not in text, f"{secret!r} leaked into the cassette"
    records = [json.loads(line) for line in text.splitlines()]
    assert {r["model"] for r in records} == {"openai-compatible:tiny-chat", "openai-compatible:tiny-embed"}

    server.httpd.shutdown()  # replay must never touch the network
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_COMPATIBLE_API_KEY")
    lm2 = build_lm(spec, mode="replay", cassette=cassette)
    embedder2 = build_embedder(espec, mode="replay", cassette=cassette)
    assert [ask(lm2, q).text for q in ["first question", "second question", "first question"]] == answers
    np.testing.assert_array_equal(embedder2.embed(["a cat", "a dog", "a cat"]), vectors)
    assert lm2.meter.snapshot()["live_calls"] == 0 and lm2.meter.snapshot()["cached_calls"] == 3


def test_request_fields_reach_the_wire(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    lm = build_lm(f"openai-compatible:{server.url}:tiny-chat")
    request = CompletionRequest.from_prompt("hi", system="be brief", temperature=0.7, max_tokens=9, seed=42,
                                            stop=("\n\n",))
    lm.complete(request)
    body = server.requests[-1]["body"]
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert (body["temperature"], body["max_tokens"], body["seed"], body["stop"]) == (0.7, 9, 42, ["\n\n"])


def test_unreachable_server_retries_then_fails_clearly(monkeypatch):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleep = SleepRecorder()
    lm = OpenAIChatLM("m", base_url=f"http://127.0.0.1:{port}/v1", api_key=FAKE_KEY, sleep=sleep, backoff=0.5,
                      max_retries=2, timeout=5)
    with pytest.raises(LLMRequestError, match="cannot connect to .* 3 attempt"):
        ask(lm, "hi")
    assert sleep.waits == [0.5, 1.0]


def test_refused_key_is_not_retried(server):
    server.failures = [(401, {})]
    sleep = SleepRecorder()
    lm = OpenAIChatLM("m", base_url=server.url, api_key=FAKE_KEY, sleep=sleep)
    with pytest.raises(LLMRequestError, match="refused the API key") as info:
        ask(lm, "hi")
    assert FAKE_KEY not in str(info.value) and sleep.waits == []


def test_retry_after_header_forms():
    from email.utils import format_datetime
    from datetime import datetime, timedelta, timezone

    from igft.llm.openai_backend import _retry_after_seconds

    assert _retry_after_seconds({"retry-after": "3"}) == 3.0
    assert _retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert _retry_after_seconds({}) is None and _retry_after_seconds(None) is None
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 <= _retry_after_seconds({"retry-after": when}) <= 30
    assert _retry_after_seconds({"retry-after": "soon"}) is None
