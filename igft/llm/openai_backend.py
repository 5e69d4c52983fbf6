"""OpenAI-compatible chat and embeddings through the `openai` SDK.

`base_url` points the same client at vLLM, Ollama, a llama.cpp server or an Azure-style gateway. The
SDK's own retries are switched off (max_retries=0): the retry loop lives here so that it is logged,
honours Retry-After exactly, and can be tested with an injected `sleep`. A semaphore caps how many
requests this client has in flight at once, whatever number of threads call it.
"""
from __future__ import annotations

import email.utils
import logging
import os
import threading
import time
from typing import Any, Callable, Sequence

import numpy as np

from igft.errors import IgftError
from igft.llm.base import Completion, CompletionRequest

logger = logging.getLogger(__name__)

MAX_RETRY_AFTER = 600.0  # seconds; longer Retry-After values are treated as this
RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}
# Local servers (vLLM, Ollama, llama.cpp) accept any key; the SDK insists on a non-empty one.
PLACEHOLDER_KEY = "sk-no-key-needed"


class MissingAPIKey(IgftError):
    """No API key in the environment for a hosted endpoint."""


class LLMRequestError(IgftError):
    """The endpoint rejected a request, or kept failing after every retry."""


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


class _OpenAIClient:
    """Shared plumbing: key lookup, client construction, retries, concurrency cap."""

    def __init__(self, model_id: str, *, name: str | None, base_url: str | None, api_key: str | None,
                 api_key_env: str, timeout: float, max_retries: int, backoff: float, max_backoff: float,
                 max_concurrency: int, sleep: Callable[[float], None], organization: str | None,
                 provider: str):
        import openai

        self.model_id = model_id
        self.model = name or f"{provider}:{model_id}"
        self.base_url = base_url
        key = api_key or os.environ.get(api_key_env)
        if not key:
            if base_url is None:
                raise MissingAPIKey(
                    f"{api_key_env} is not set; export {api_key_env}=... (or pass --mode replay with a cassette "
                    f"to run without a key)")
            key = PLACEHOLDER_KEY
        # The key lives only inside the SDK client; it is never an attribute of ours nor part of a cassette.
        self._client = openai.OpenAI(api_key=key, base_url=base_url, timeout=timeout, max_retries=0,
                                     organization=organization)
        self.max_retries = max(0, int(max_retries))
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.max_concurrency = max(1, int(max_concurrency))
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._sleep = sleep
        self.retries = 0  # total retries made, for tests and stats
        self._count_lock = threading.Lock()

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run `fn` under the concurrency cap, retrying transient failures with backoff."""
        import openai

        attempt = 0
        while True:
            try:
                with self._slots:
                    return fn()
            except openai.APIStatusError as err:
                status = err.status_code
                if status in (401, 403):
                    raise LLMRequestError(
                        f"{self.model}: the endpoint refused the API key (HTTP {status}); check the key in the "
                        f"environment, or use --mode replay") from err
                if status not in RETRYABLE_STATUS:
                    raise LLMRequestError(f"{self.model}: {what} failed with HTTP {status}: "
                                          f"{_one_line(err)}") from err
                wait = _retry_after_seconds(err.response.headers if err.response is not None else None)
                reason = f"HTTP {status}"
            except (openai.APIConnectionError, openai.APITimeoutError) as err:
                wait, reason = None, type(err).__name__
                if attempt >= self.max_retries:
                    raise LLMRequestError(
                        f"{self.model}: cannot reach {self.base_url or 'the OpenAI API'} ({reason}) after "
                        f"{attempt + 1} attempt(s); check base_url / network, or use --mode replay") from err
            else:  # pragma: no cover - the return above leaves the loop
                break
            if attempt >= self.max_retries:
                raise LLMRequestError(f"{self.model}: {what} still failing ({reason}) after {attempt + 1} "
                                      f"attempt(s); try later, lower --max-concurrency, or use --mode replay")
            if wait is None:
                wait = min(self.backoff * (2 ** attempt), self.max_backoff)
            else:  # the server's Retry-After wins over our backoff, within a sanity cap
                wait = min(wait, MAX_RETRY_AFTER)
            attempt += 1
            with self._count_lock:
                self.retries += 1
            logger.warning("%s: %s got %s; retry %d/%d in %.2fs", self.model, what, reason, attempt,
                           self.max_retries, wait)
            self._sleep(wait)


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split())
    return text[:300]


class OpenAIChatLM(_OpenAIClient):
    """Chat completions against OpenAI or any OpenAI-compatible server, as an `LM`."""

    def __init__(self, model_id: str, *, name: str | None = None, base_url: str | None = None,
                 api_key: str | None = None, api_key_env: str = "OPENAI_API_KEY", timeout: float = 120.0,
                 max_retries: int = 6, backoff: float = 1.0, max_backoff: float = 60.0, max_concurrency: int = 8,
                 sleep: Callable[[float], None] = time.sleep, organization: str | None = None,
                 max_tokens_param: str = "max_tokens", extra_body: dict | None = None, **_: Any):
        super().__init__(model_id, name=name, base_url=base_url, api_key=api_key, api_key_env=api_key_env,
                         timeout=timeout, max_retries=max_retries, backoff=backoff, max_backoff=max_backoff,
                         max_concurrency=max_concurrency, sleep=sleep, organization=organization,
                         provider="openai" if base_url is None else "openai-compatible")
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
        response = self._call("chat completion", lambda: self._client.chat.completions.create(**params))
        if not response.choices:
            raise LLMRequestError(f"{self.model}: the endpoint returned no choices")
        text = response.choices[0].message.content or ""
        usage = response.usage
        return Completion(text=text, prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                          completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                          model=response.model or self.model_id)


class OpenAIEmbedder(_OpenAIClient):
    """Embeddings against OpenAI or any OpenAI-compatible server, as an `Embedder` (rows L2-normalised)."""

    def __init__(self, model_id: str, *, name: str | None = None, base_url: str | None = None,
                 api_key: str | None = None, api_key_env: str = "OPENAI_API_KEY", timeout: float = 120.0,
                 max_retries: int = 6, backoff: float = 1.0, max_backoff: float = 60.0, max_concurrency: int = 8,
                 sleep: Callable[[float], None] = time.sleep, organization: str | None = None,
                 batch_size: int = 256, **_: Any):
        super().__init__(model_id, name=name, base_url=base_url, api_key=api_key, api_key_env=api_key_env,
                         timeout=timeout, max_retries=max_retries, backoff=backoff, max_backoff=max_backoff,
                         max_concurrency=max_concurrency, sleep=sleep, organization=organization,
                         provider="openai" if base_url is None else "openai-compatible")
        self.batch_size = max(1, int(batch_size))  # OpenAI accepts up to 2048 inputs per request
        self.prompt_tokens = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) if str(t) else " " for t in texts]  # the API rejects empty strings
        rows: list[np.ndarray] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            # encoding_format="float": vLLM / Ollama do not all speak the SDK's default base64.
            response = self._call("embedding", lambda: self._client.embeddings.create(
                model=self.model_id, input=batch, encoding_format="float"))
            data = sorted(response.data, key=lambda item: item.index)
            if len(data) != len(batch):
                raise LLMRequestError(f"{self.model}: asked for {len(batch)} embeddings, got {len(data)}")
            rows.extend(np.asarray(item.embedding, dtype=np.float32) for item in data)
            usage = getattr(response, "usage", None)
            self.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        matrix = np.stack(rows)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)
