"""The two protocols every model call in igft goes through: `LM.complete` and `Embedder.embed`.

Everything else in igft (GIFA, optimizers, labelers, classifiers' prompt baseline) sees only these,
so a cassette, a usage meter, a remote API or a local model can stand behind any of them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class CompletionRequest:
    """One chat completion request. Everything here takes part in the cassette key."""

    messages: tuple[dict, ...]
    temperature: float = 0.0
    max_tokens: int = 512
    seed: int | None = None
    stop: tuple[str, ...] | None = None

    @classmethod
    def from_prompt(cls, prompt: str, *, system: str | None = None, **kwargs: Any) -> "CompletionRequest":
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        return cls(messages=tuple(messages), **kwargs)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["messages"] = [dict(m) for m in self.messages]
        data["stop"] = list(self.stop) if self.stop else None
        return data

    @property
    def prompt_preview(self) -> str:
        return self.messages[-1]["content"][:200] if self.messages else ""


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    cached: bool = False


@runtime_checkable
class LM(Protocol):
    """A chat model. `model` is a stable name (e.g. 'openai:gpt-4o', 'local:smollm2') used in cassette keys."""

    model: str

    def complete(self, request: CompletionRequest) -> Completion: ...


@runtime_checkable
class Embedder(Protocol):
    """Text embedder returning an (n, d) float32 array of L2-normalised rows."""

    model: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def ask(lm: LM, prompt: str, *, system: str | None = None, temperature: float = 0.0, max_tokens: int = 512,
        seed: int | None = None) -> Completion:
    """Convenience: one user prompt (and optional system prompt) -> Completion."""
    return lm.complete(CompletionRequest.from_prompt(prompt, system=system, temperature=temperature,
                                                     max_tokens=max_tokens, seed=seed))


def request_key(model: str, request: CompletionRequest | dict) -> str:
    """sha256 of the canonical JSON of (model, request): the content address of a call."""
    payload = {"model": model, "request": request.to_dict() if isinstance(request, CompletionRequest) else request}
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ScriptedLM:
    """A deterministic fake LM for tests.

    `script` is either a list of replies returned in order (cycling is an error: tests should know how
    many calls they make), or a function `request -> str`. Every request is kept in `.requests`.
    """

    def __init__(self, script: Sequence[str] | Callable[[CompletionRequest], str], model: str = "scripted"):
        self.model = model
        self._script = script
        self.requests: list[CompletionRequest] = []

    def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        if callable(self._script):
            text = self._script(request)
        else:
            if len(self.requests) > len(self._script):
                raise AssertionError(f"ScriptedLM ran out of replies after {len(self._script)} calls")
            text = self._script[len(self.requests) - 1]
        prompt_tokens = sum(len(m["content"].split()) for m in request.messages)
        return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=len(text.split()), model=self.model)


class HashingEmbedder:
    """A deterministic, dependency-free embedder for tests: hashed bag of lowercased words, L2-normalised."""

    def __init__(self, dim: int = 256, model: str = "hashing"):
        self.dim = dim
        self.model = model
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in str(text).lower().split():
                h = int(hashlib.md5(word.strip(".,!?:;").encode()).hexdigest(), 16)
                out[row, h % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)
