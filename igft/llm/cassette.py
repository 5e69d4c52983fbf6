"""Cassettes: content-addressed JSONL recordings of model calls, replayed with no key and no network.

One line per call. A chat record is
    {"format": 1, "kind": "chat", "key": sha256(model, request), "occurrence": n, "model": ...,
     "request": {...}, "response": {"text", "prompt_tokens", "completion_tokens", "model"}, "recorded_at": ...}
and an embedding record is
    {"format": 1, "kind": "embedding", "key": sha256(model, text), "model": ..., "text": ...,
     "dim": d, "vector": base64(float32 little-endian), "recorded_at": ...}.

The key never contains an endpoint, an API key or a header: only the spec's model name and the request.
`occurrence` numbers repeated identical requests within one session (0 for the first, 1 for the second,
...), so a sampled request asked three times replays three different recorded answers, in order. A
session's counters start at 0, so a rerun of the same job replays from the beginning.

Modes: `live` (no cassette), `record` (replay hits, call the model for misses and append them, one
flushed line at a time so a killed run keeps everything it paid for), `replay` (strict: a miss raises
`CassetteMiss`; the model is never constructed, so replay needs no weights, key or network).
"""
from __future__ import annotations

import base64
import hashlib
import heapq
import json
import logging
import os
import threading
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np

from igft.errors import IgftError
from igft.llm.base import LM, Completion, CompletionRequest, Embedder, request_key

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODES = ("live", "record", "replay")


class CassetteMiss(IgftError):
    """Replay mode met a request the cassette does not hold."""


class CassetteFormatError(IgftError):
    """A cassette file is unreadable or written by an incompatible igft version."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _preview(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_mode(mode: str, path: str | os.PathLike | None) -> str:
    """Validate a mode/path pair; returns the mode."""
    if mode not in MODES:
        raise IgftError(f"unknown mode {mode!r}; use one of: {', '.join(MODES)}")
    if mode != "live" and path is None:
        raise IgftError(f"mode {mode!r} needs a cassette file; pass --cassette PATH (or use --mode live)")
    return mode


def embedding_key(model: str, text: str) -> str:
    """Content address of one embedded text (per text, so batching never changes a key)."""
    canonical = json.dumps({"model": model, "text": text}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def encode_vector(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(data: str, dim: int) -> np.ndarray:
    vector = np.frombuffer(base64.b64decode(data), dtype="<f4").astype(np.float32)
    if vector.shape[0] != dim:
        raise ValueError(f"vector has {vector.shape[0]} values, expected {dim}")
    return vector


class CassetteFile:
    """Reads one JSONL cassette (records of one `kind`) and appends new records atomically per line.

    Several CassetteFile objects (a chat one and an embedding one) may share a file: each line is one
    `os.write` on an O_APPEND descriptor, so lines from different writers never interleave.
    """

    def __init__(self, path: str | os.PathLike, kind: str):
        self.path = Path(path)
        self.kind = kind
        self._lock = threading.Lock()
        self.records: dict[tuple, dict] = {}
        # A run killed mid-write leaves a last line without its newline; the first append ends it so a new
        # record is never glued onto it. Decided once at load: re-reading the file's last byte before each
        # append raced with another writer's line in progress and wrote stray blank lines.
        self._torn_tail = False
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            raw = self.path.read_bytes()
        except OSError as err:
            raise CassetteFormatError(f"cannot read cassette {self.path}: {err}") from err
        self._torn_tail = bool(raw) and not raw.endswith(b"\n")
        lines = raw.split(b"\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                stripped = line.strip()
                if stripped.startswith(b"{"):
                    # A line torn by a run killed mid-write (a resumed run appends after it on a new
                    # line): everything else is intact, so skip it rather than lose the cassette.
                    logger.warning("%s: ignoring truncated line %d (run killed while recording?)",
                                   self.path, number)
                    continue
                raise CassetteFormatError(
                    f"cassette {self.path} line {number} is not valid JSON; delete that line or re-record with --mode record")
            if not isinstance(record, dict) or "format" not in record:
                raise CassetteFormatError(
                    f"cassette {self.path} line {number} has no 'format' field; it is not an igft cassette")
            if record["format"] != FORMAT_VERSION:
                raise CassetteFormatError(
                    f"cassette {self.path} line {number} has format version {record['format']!r} but this igft reads "
                    f"version {FORMAT_VERSION}; upgrade igft or re-record it with --mode record")
            if record.get("kind", "chat") != self.kind:
                continue
            try:
                ident = (record["key"], record.get("occurrence", 0))
                self._validate(record)
            except (KeyError, TypeError, ValueError) as err:
                raise CassetteFormatError(
                    f"cassette {self.path} line {number} is missing or has a bad field ({err}); re-record with --mode record")
            self.records.setdefault(ident, record)

    def _validate(self, record: dict) -> None:
        if self.kind == "chat":
            response = record["response"]
            str(response["text"])
        else:
            decode_vector(record["vector"], int(record["dim"]))

    def get(self, key: str, occurrence: int = 0) -> dict | None:
        with self._lock:
            return self.records.get((key, occurrence))

    def append(self, records: Sequence[dict]) -> None:
        """Append records, one flushed line each; already-held (key, occurrence) pairs are skipped."""
        with self._lock:
            fresh = [r for r in records if (r["key"], r.get("occurrence", 0)) not in self.records]
            if not fresh:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if self._torn_tail:
                    os.write(fd, b"\n")
                    self._torn_tail = False
                for record in fresh:
                    line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
                    os.write(fd, line.encode("utf-8"))
                    self.records[(record["key"], record.get("occurrence", 0))] = record
            finally:
                os.close(fd)


LMOrFactory = Union[LM, Callable[[], LM]]


class _CassetteWrapper:
    """What both cassette wrappers share: mode, cassette file, and the real backend built on first use."""

    _kind = ""      # record kind in the cassette: "chat" or "embedding"
    _method = ""    # the backend's method, to tell a backend from a factory of one

    def __init__(self, inner, path: str | os.PathLike | None, mode: str, model: str | None):
        self.mode = check_mode(mode, path)
        if hasattr(inner, self._method):
            self._inner, self._factory = inner, None
        else:
            self._inner, self._factory = None, inner
        if model is None:
            if self._inner is None:
                raise ValueError(f"{type(self).__name__} needs model= when given a factory")
            model = self._inner.model
        self.model = model
        self.path = Path(path) if path is not None else None
        self._store = CassetteFile(self.path, self._kind) if self.mode != "live" else None
        self._inner_lock = threading.Lock()
        # Called right before a live call (after a cassette miss); the Metered wrappers put their budget
        # check here so that cached answers stay free even when the budget is spent.
        self.before_live: Callable | None = None

    @property
    def inner(self):
        """The real backend, built on first use (never in replay mode)."""
        if self._inner is None:
            with self._inner_lock:
                if self._inner is None:
                    assert self._factory is not None
                    self._inner = self._factory()
        return self._inner


class CassetteLM(_CassetteWrapper):
    """An LM that records to / replays from a cassette, constructing the real model only on a miss."""

    _kind, _method = "chat", "complete"

    def __init__(self, inner: LMOrFactory, path: str | os.PathLike | None, mode: str = "replay", *,
                 model: str | None = None):
        super().__init__(inner, path, mode, model)
        self._counts: dict[str, int] = defaultdict(int)
        self._released: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def _next_occurrence(self, key: str) -> int:
        with self._lock:
            free = self._released.get(key)
            if free:
                return heapq.heappop(free)
            occurrence = self._counts[key]
            self._counts[key] += 1
            return occurrence

    def _release(self, key: str, occurrence: int) -> None:
        # A call that failed (budget, network, miss) recorded nothing: its occurrence number goes back,
        # so retrying the same request in this session records the number a fresh replay will ask for.
        with self._lock:
            heapq.heappush(self._released.setdefault(key, []), occurrence)

    def complete(self, request: CompletionRequest) -> Completion:
        if self.mode == "live":
            return self._live(request)
        key = request_key(self.model, request)
        occurrence = self._next_occurrence(key)
        record = self._store.get(key, occurrence)  # type: ignore[union-attr]
        if record is not None:
            response = record["response"]
            return Completion(text=response["text"], prompt_tokens=int(response.get("prompt_tokens", 0)),
                              completion_tokens=int(response.get("completion_tokens", 0)),
                              model=response.get("model", self.model), cached=True)
        if self.mode == "replay":
            self._release(key, occurrence)
            held = sum(1 for (k, _) in self._store.records if k == key)  # type: ignore[union-attr]
            detail = (f"occurrence {occurrence} of a request recorded {held} time(s)" if held
                      else "request not recorded")
            raise CassetteMiss(
                f"no cassette entry for key {key[:12]}… ({detail}; model {self.model}; prompt: "
                f"{_preview(request.prompt_preview)!r}) in {self.path}; rerun with --mode record to record it")
        try:
            completion = self._live(request)
        except BaseException:
            self._release(key, occurrence)
            raise
        self._store.append([{  # type: ignore[union-attr]
            "format": FORMAT_VERSION, "kind": "chat", "key": key, "occurrence": occurrence, "model": self.model,
            "request": request.to_dict(),
            "response": {"text": completion.text, "prompt_tokens": completion.prompt_tokens,
                         "completion_tokens": completion.completion_tokens, "model": completion.model},
            "recorded_at": _now(),
        }])
        return completion

    def _live(self, request: CompletionRequest) -> Completion:
        if self.before_live is not None:
            self.before_live(request)
        completion = self.inner.complete(request)
        if completion.cached:
            completion = Completion(completion.text, completion.prompt_tokens, completion.completion_tokens,
                                    completion.model, cached=False)
        return completion


EmbedderOrFactory = Union[Embedder, Callable[[], Embedder]]


class CassetteEmbedder(_CassetteWrapper):
    """An Embedder that records / replays one vector per text; misses are embedded in one batch."""

    _kind, _method = "embedding", "embed"

    def __init__(self, inner: EmbedderOrFactory, path: str | os.PathLike | None, mode: str = "replay", *,
                 model: str | None = None):
        super().__init__(inner, path, mode, model)

    def _live(self, texts: list[str]) -> np.ndarray:
        if self.before_live is not None:
            self.before_live(texts)
        return np.asarray(self.inner.embed(texts), dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        if self.mode == "live":
            return self._live(texts)
        keys = [embedding_key(self.model, t) for t in texts]
        found: dict[str, np.ndarray] = {}
        missing: dict[str, str] = {}  # key -> text, first-seen order, deduplicated
        for key, text in zip(keys, texts):
            if key in found or key in missing:
                continue
            record = self._store.get(key)  # type: ignore[union-attr]
            if record is not None:
                found[key] = decode_vector(record["vector"], int(record["dim"]))
            else:
                missing[key] = text
        if missing:
            if self.mode == "replay":
                key, text = next(iter(missing.items()))
                raise CassetteMiss(
                    f"no cassette entry for the embedding of {len(missing)} text(s), first key {key[:12]}… (model "
                    f"{self.model}; text: {_preview(text)!r}) in {self.path}; rerun with --mode record to record it")
            vectors = self._live(list(missing.values()))
            now = _now()
            records = []
            for (key, text), vector in zip(missing.items(), vectors):
                found[key] = vector
                records.append({"format": FORMAT_VERSION, "kind": "embedding", "key": key, "model": self.model,
                                "text": text, "dim": int(vector.shape[0]), "vector": encode_vector(vector),
                                "recorded_at": now})
            self._store.append(records)  # type: ignore[union-attr]
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32)
