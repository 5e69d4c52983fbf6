"""OpenAI-compatible chat and embeddings through the `openai` SDK.

`base_url` points the same client at vLLM, Ollama, a llama.cpp server or an Azure-style gateway. The
SDK's own retries are switched off (max_retries=0): the retry loop lives here so that it is logged,
honours Retry-After exactly, and can be tested with an injected `sleep`.

What is retried with backoff: 429 and 5xx-like statuses, a malformed or empty JSON body, a connection
reset, a read timeout. What is not: 401/403 (the key), 404 (the URL or model; a base URL without
`/v1` is named), other 4xx, which raise `RequestRejected` so that a labeler can record that one
request as failed and go on. A server that refuses connections is reported within seconds, not after
the full backoff schedule. An `AdaptiveLimit` caps requests in flight: it halves on 429 and grows back.
"""
from __future__ import annotations

import email.utils
import json
import logging
import os
import threading
import time
from typing import Any, Callable, Sequence

import numpy as np

from igft.llm.base import Completion, CompletionRequest
from igft.llm.concurrency import AdaptiveLimit
from igft.llm.errors import EndpointUnreachable, LLMRequestError, MissingAPIKey, RequestRejected

logger = logging.getLogger(__name__)

__all__ = ["OpenAIChatLM", "OpenAIEmbedder", "LLMRequestError", "MissingAPIKey", "RequestRejected",
           "EndpointUnreachable", "DEFAULT_REQUEST_TIMEOUT", "DEFAULT_MAX_ATTEMPTS"]

MAX_RETRY_AFTER = 600.0  # seconds; longer Retry-After values are treated as this
RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}
DEFAULT_REQUEST_TIMEOUT = 60.0
DEFAULT_MAX_ATTEMPTS = 6
# Connecting is quick or never: a refused or unanswered connect is given this long, all attempts together.
CONNECT_TIMEOUT = 3.0
UNREACHABLE_GIVE_UP = 8.0


class _MalformedBody(Exception):
    """A 2xx whose body is not the JSON the API promises (truncated, empty, wrong shape)."""


def _retry_after_seconds(headers: Any) -> float | None:
    """Seconds asked for by `retry-after-ms` / `retry-after` (seconds or an HTTP date), if any."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None  # unparseable: fall back to exponential backoff
        return max(0.0, parsed.timestamp() - time.time())


def _server_message(err: Exception) -> str:
    """The server's own error message (OpenAI-style `{"error": {"message": ...}}`), else the SDK's text."""
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return _one_line(str(inner["message"]))
        if isinstance(inner, str):
            return _one_line(inner)
    return _one_line(err)


def _is_connect_failure(err: Exception) -> bool:
    """True when the TCP connection itself failed (refused / connect timeout), not a reset mid-request."""
    cause = err.__cause__
    while cause is not None:
        if type(cause).__name__ in ("ConnectError", "ConnectTimeout"):
            return True
        if isinstance(cause, ConnectionRefusedError):
            return True
        cause = cause.__cause__
    return False


class _OpenAIClient:
    """Shared plumbing: key lookup, client construction, retries, adaptive concurrency cap."""

    def __init__(self, model_id: str, *, name: str | None, base_url: str | None, api_key: str | None,
                 api_key_env: str | None, timeout: float, max_attempts: int | None, max_retries: int | None,
                 backoff: float, max_backoff: float, max_concurrency: int, sleep: Callable[[float], None],
                 organization: str | None, provider: str):
        import openai

        self.model_id = model_id
        self.model = name or f"{provider}:{model_id}"
        self.base_url = base_url
        key = api_key or (os.environ.get(api_key_env) if api_key_env else None)
        if not key:
            if base_url is None:
                env = api_key_env or "OPENAI_API_KEY"
                raise MissingAPIKey(
                    f"{env} is not set; export {env}=... (or pass --mode replay with a cassette to run without a key)")
            # Local servers (vLLM, Ollama, llama.cpp) accept any key; the SDK insists on a non-empty one.
            key = "sk-no-key-needed"
        if max_attempts is None:
            max_attempts = (max_retries + 1) if max_retries is not None else DEFAULT_MAX_ATTEMPTS
        if int(max_attempts) < 1:
            raise LLMRequestError(f"max attempts must be at least 1, got {max_attempts}; pass --max-attempts 1 or more")
        if not float(timeout) > 0:
            raise LLMRequestError(f"request timeout must be positive, got {timeout}; pass --request-timeout SECONDS")
        self.timeout = float(timeout)
        # The key lives only inside the SDK client; it is never an attribute of ours nor part of a cassette.
        self._client = openai.OpenAI(
            api_key=key, base_url=base_url, max_retries=0, organization=organization,
            timeout=openai.Timeout(self.timeout, connect=min(CONNECT_TIMEOUT, self.timeout)))
        self.max_attempts = int(max_attempts)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.max_concurrency = max(1, int(max_concurrency))
        self.limit = AdaptiveLimit(self.max_concurrency)
        self._sleep = sleep
        self.retries = 0  # total retries made, for tests and stats
        self.rate_limited = 0  # 429 answers seen
        self._count_lock = threading.Lock()

    @property
    def max_retries(self) -> int:
        return self.max_attempts - 1

    def _where(self) -> str:
        return self.base_url or "the OpenAI API"

    def _call(self, what: str, fn: Callable[[], Any], parse: Callable[[Any], Any]) -> Any:
        """Run `fn` under the concurrency cap and `parse` its response, retrying transient failures."""
        import openai

        attempt, waited, connecting = 0, 0.0, 0.0  # waited: our backoff sleeps; connecting: failed connects
        while True:
            attempt += 1
            wait: float | None = None
            generation = self.limit.acquire(retrying=attempt > 1)
            sent = time.monotonic()
            try:
                try:
                    result = parse(fn())
                finally:
                    self.limit.release()
            except openai.APIStatusError as err:
                status = err.status_code
                if status in (401, 403):
                    raise LLMRequestError(
                        f"{self.model}: {self._where()} refused the API key (HTTP {status}); check the key in the "
                        f"environment variable named by --api-key-env, or use --mode replay") from err
                if status == 404:
                    hint = ("; the base URL has no /v1: add it (e.g. http://localhost:8000/v1)"
                            if self.base_url and not self.base_url.rstrip("/").endswith("/v1")
                            else f"; check the base URL and that the server serves model {self.model_id!r}")
                    raise LLMRequestError(f"{self.model}: {what} got HTTP 404 from {self._where()} "
                                          f"({_server_message(err)}){hint}") from err
                if status not in RETRYABLE_STATUS:
                    message = _server_message(err)
                    raise RequestRejected(f"{self.model}: {what} rejected with HTTP {status}: {message}",
                                          status, message) from err
                if status == 429:
                    with self._count_lock:
                        self.rate_limited += 1
                wait = _retry_after_seconds(err.response.headers if err.response is not None else None)
                if status == 429:
                    self.limit.on_429(generation, wait)
                reason = f"HTTP {status}"
            except (openai.APIConnectionError, openai.APITimeoutError) as err:
                reason = "read timeout" if isinstance(err, openai.APITimeoutError) and not _is_connect_failure(err) \
                    else type(err.__cause__ or err).__name__
                if _is_connect_failure(err):
                    connecting += time.monotonic() - sent
                    elapsed = waited + connecting
                    if attempt >= self.max_attempts or elapsed + self._backoff(attempt) > UNREACHABLE_GIVE_UP:
                        raise EndpointUnreachable(
                            f"{self.model}: cannot connect to {self._where()} ({reason}, {attempt} attempt(s) in "
                            f"{elapsed:.1f} s); start the server or fix the URL, or use --mode replay") from err
                elif attempt >= self.max_attempts:
                    raise LLMRequestError(
                        f"{self.model}: {what} to {self._where()} still failing ({reason}) after {attempt} attempt(s); "
                        f"raise --request-timeout or --max-attempts, or use --mode replay") from err
            except (_MalformedBody, json.JSONDecodeError, UnicodeDecodeError) as err:
                reason = f"malformed response body ({_one_line(err)[:80]})"
            else:
                self.limit.on_success()
                return result
            if attempt >= self.max_attempts:
                raise LLMRequestError(f"{self.model}: {what} still failing ({reason}) after {attempt} attempt(s); "
                                      f"try later, lower --concurrency, raise --max-attempts, or use --mode replay")
            if wait is None:
                wait = self._backoff(attempt)
            else:  # the server's Retry-After wins over our backoff, within a sanity cap
                wait = min(wait, MAX_RETRY_AFTER)
            with self._count_lock:
                self.retries += 1
            waited += wait
            logger.warning("%s: %s got %s; retry %d/%d in %.2fs", self.model, what, reason, attempt,
                           self.max_attempts - 1, wait)
            self._sleep(wait)

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff * (2 ** (attempt - 1)), self.max_backoff)


def _one_line(err: Any) -> str:
    text = " ".join(str(err).split())
    return text[:300]


class OpenAIChatLM(_OpenAIClient):
    """Chat completions against OpenAI or any OpenAI-compatible server, as an `LM`."""

    def __init__(self, model_id: str, *, name: str | None = None, base_url: str | None = None,
                 api_key: str | None = None, api_key_env: str | None = "OPENAI_API_KEY",
                 timeout: float = DEFAULT_REQUEST_TIMEOUT, max_attempts: int | None = None,
                 max_retries: int | None = None, backoff: float = 1.0, max_backoff: float = 60.0,
                 max_concurrency: int = 8, sleep: Callable[[float], None] = time.sleep,
                 organization: str | None = None, max_tokens_param: str = "max_tokens",
                 extra_body: dict | None = None, **_: Any):
        super().__init__(model_id, name=name, base_url=base_url, api_key=api_key, api_key_env=api_key_env,
                         timeout=timeout, max_attempts=max_attempts, max_retries=max_retries, backoff=backoff,
                         max_backoff=max_backoff, max_concurrency=max_concurrency, sleep=sleep,
                         organization=organization, provider="openai" if base_url is None else "openai-compatible")
        # Reasoning models take `max_completion_tokens` instead of `max_tokens`.
        self.max_tokens_param = max_tokens_param
        self.extra_body = extra_body

    def complete(self, request: CompletionRequest) -> Completion:
        params: dict[str, Any] = {"model": self.model_id, "messages": [dict(m) for m in request.messages],
                                  "temperature": request.temperature, self.max_tokens_param: request.max_tokens}
        if request.seed is not None:
            params["seed"] = request.seed
        if request.stop:
            params["stop"] = list(request.stop)
        if self.extra_body:
            params["extra_body"] = self.extra_body
        return self._call("chat completion", lambda: self._client.chat.completions.create(**params),
                          self._parse)

    def _parse(self, response: Any) -> Completion:
        choices = getattr(response, "choices", None)
        if not choices:  # a 200 without choices is a broken answer, like a truncated body: retry it
            raise _MalformedBody("the response has no choices")
        message = getattr(choices[0], "message", None)
        if message is None:
            raise _MalformedBody("the first choice has no message")
        usage = getattr(response, "usage", None)
        return Completion(text=message.content or "", prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                          completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                          model=getattr(response, "model", None) or self.model_id)


class OpenAIEmbedder(_OpenAIClient):
    """Embeddings against OpenAI or any OpenAI-compatible server, as an `Embedder` (rows L2-normalised).

    A call with more texts than `batch_size` sends its batches in parallel (up to the concurrency cap).
    """

    def __init__(self, model_id: str, *, name: str | None = None, base_url: str | None = None,
                 api_key: str | None = None, api_key_env: str | None = "OPENAI_API_KEY",
                 timeout: float = DEFAULT_REQUEST_TIMEOUT, max_attempts: int | None = None,
                 max_retries: int | None = None, backoff: float = 1.0, max_backoff: float = 60.0,
                 max_concurrency: int = 8, sleep: Callable[[float], None] = time.sleep,
                 organization: str | None = None, batch_size: int = 256, **_: Any):
        super().__init__(model_id, name=name, base_url=base_url, api_key=api_key, api_key_env=api_key_env,
                         timeout=timeout, max_attempts=max_attempts, max_retries=max_retries, backoff=backoff,
                         max_backoff=max_backoff, max_concurrency=max_concurrency, sleep=sleep,
                         organization=organization, provider="openai" if base_url is None else "openai-compatible")
        self.batch_size = max(1, int(batch_size))  # OpenAI accepts up to 2048 inputs per request
        self.prompt_tokens = 0

    def _embed_batch(self, batch: list[str]) -> list[np.ndarray]:
        def parse(response: Any) -> tuple[list[np.ndarray], int]:
            data = getattr(response, "data", None)
            if not isinstance(data, list):
                raise _MalformedBody("the response has no data list")
            data = sorted(data, key=lambda item: item.index)
            if len(data) != len(batch):
                raise _MalformedBody(f"asked for {len(batch)} embeddings, got {len(data)}")
            usage = getattr(response, "usage", None)
            return [np.asarray(item.embedding, dtype=np.float32) for item in data], \
                int(getattr(usage, "prompt_tokens", 0) or 0)

        # encoding_format="float": vLLM / Ollama do not all speak the SDK's default base64.
        rows, tokens = self._call("embedding", lambda: self._client.embeddings.create(
            model=self.model_id, input=batch, encoding_format="float"), parse)
        with self._count_lock:
            self.prompt_tokens += tokens
        return rows

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) if str(t) else " " for t in texts]  # the API rejects empty strings
        batches = [texts[s:s + self.batch_size] for s in range(0, len(texts), self.batch_size)]
        if len(batches) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(len(batches), self.max_concurrency),
                                    thread_name_prefix="embed") as pool:
                parts = list(pool.map(self._embed_batch, batches))  # results in batch order
        else:
            parts = [self._embed_batch(b) for b in batches]
        rows = [row for part in parts for row in part]
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        matrix = np.stack(rows)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)
