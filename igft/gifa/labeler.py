"""GIFA: label every message of every conversation with one intent, conversation by conversation.

For each conversation: retrieve the intents of the most similar already-labeled messages, build the
prompt (instruction + output protocol + known intents + numbered conversation), call the LM, parse,
retry with a raised temperature when the answer is unusable, then add the labels to the catalog and
the retrieval index so the next conversation can reuse them.

`window` W > 1 labels up to W conversations concurrently. Windows are fixed by conversation order
from the start (conversations 0..W-1, W..2W-1, ...), all prompts of a window are built from one
snapshot of the catalog and index before any of its answers is merged, and outcomes are merged in
conversation order, so the result depends on W but never on thread timing -- nor on where a run was
interrupted: a resumed run rebuilds the same snapshots and sends exactly the requests an uninterrupted
run sends. W = 1 is the paper's sequential algorithm.

A request the endpoint rejects for itself alone (`RequestRejected`: context length, a bad parameter)
fails that conversation, with the status and the server's message, and the run goes on.

With `out_dir`, one JSON line per finished conversation goes to `progress.jsonl` as the run goes; a
rerun with the same settings replays those lines (no LM call) and continues where the run stopped.
`retry_failed=True` relabels the recorded failures with fresh attempts (continuing the attempt
numbers, so each sends a request not asked before).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from igft.data import Conversation, Dataset
from igft.errors import IgftError
from igft.gifa.catalog import ANN_THRESHOLD, IntentCatalog, RetrievalIndex
from igft.gifa.descriptions import describe_intents
from igft.gifa.parser import ParseError, parse_intents
from igft.gifa.progress import PROGRESS_FORMAT, ConversationOutcome, ProgressFile
from igft.gifa.prompts import METHODS, ROLE_STOP, SEED_INSTRUCTION, KnownIntent, build_labeling_messages
from igft.labeling import LabelingResult
from igft.llm.base import CompletionRequest, Embedder, LM
from igft.llm.errors import RequestRejected

logger = logging.getLogger(__name__)

MAX_RETRIES_LIMIT = 10
# embedder object -> {digest of its texts: vectors}; a few datasets each (prompt search scores prefixes).
_EMBEDDING_MEMO: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_MEMO_PER_EMBEDDER = 8
MAX_TEMPERATURE = 2.0


class GifaConfigError(IgftError):
    """A GIFA setting is out of range."""


@dataclass
class GifaConfig:
    """Settings of one GIFA run. All but embed_batch_size / embed_workers go into the progress header, so
    a resume never mixes answers obtained under different settings."""

    instruction: str = field(default=SEED_INSTRUCTION, metadata={"help": "the instruction at the top of every labeling prompt (what prompt search tunes)"})
    method: str = field(default="name", metadata={"help": "how known intents are shown: name | example (with top_n example messages) | general (with LLM-written descriptions)"})
    top_k: int = field(default=5, metadata={"help": "per message of the next conversation, this many most similar labeled messages contribute their intents"})
    top_n: int = field(default=2, metadata={"help": "example messages shown per known intent (method example)"})
    temperature: float = field(default=0.0, metadata={"help": "temperature of the first attempt"})
    retry_temperature_step: float = field(default=0.3, metadata={"help": "added to the temperature at each retry (capped at 2.0)"})
    max_retries: int = field(default=2, metadata={"help": f"retries after an unusable answer (0..{MAX_RETRIES_LIMIT}); then the conversation is recorded as failed"})
    tokens_per_message: int = field(default=24, metadata={"help": "completion budget per message line; a request asks for 8 + this x messages tokens"})
    max_tokens: int = field(default=1024, metadata={"help": "upper bound on the completion tokens of one request"})
    worked_example: bool = field(default=True, metadata={"help": "show a short worked example of the answer format (helps small open models)"})
    stop_on_role_prefix: bool = field(default=True, metadata={"help": "stop generation at 'customer:' / 'assistant:' so a model copying the conversation fails fast"})
    window: int = field(default=1, metadata={"help": "conversations labeled concurrently against one snapshot (1 = the paper's sequential algorithm)"})
    seed: int = field(default=0, metadata={"help": "seed sent with every request (sampling at temperature > 0 is seeded) and of the approximate (IVF) index"})
    ann_threshold: int | None = field(default=ANN_THRESHOLD, metadata={"help": "above this many labeled messages retrieval uses an inverted-file (IVF) index (faiss), exact search below; None = always exact"})
    embed_batch_size: int = field(default=256, metadata={"help": "texts per embedder call when embedding all messages up front"})
    embed_workers: int = field(default=1, metadata={"help": "embedder calls in flight at once when embedding all messages (raise it for a remote embedder)"})

    def validate(self) -> "GifaConfig":
        problems = []
        if not isinstance(self.instruction, str) or not self.instruction.strip():
            problems.append("instruction is empty; give the labeling instruction text")
        if self.method not in METHODS:
            problems.append(f"method {self.method!r} is unknown; use one of {list(METHODS)}")
        for name, low in (("top_k", 0), ("top_n", 0), ("tokens_per_message", 1), ("max_tokens", 1),
                          ("window", 1), ("embed_batch_size", 1), ("embed_workers", 1)):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < low:
                problems.append(f"{name} must be an integer >= {low}, got {getattr(self, name)!r}")
        if self.ann_threshold is not None and (not isinstance(self.ann_threshold, int) or self.ann_threshold < 0):
            problems.append(f"ann_threshold must be None or an integer >= 0, got {self.ann_threshold!r}")
        if not isinstance(self.max_retries, int) or not 0 <= self.max_retries <= MAX_RETRIES_LIMIT:
            problems.append(f"max_retries must be 0..{MAX_RETRIES_LIMIT}, got {self.max_retries!r}")
        if not 0.0 <= self.temperature <= MAX_TEMPERATURE or self.retry_temperature_step < 0:
            problems.append(f"temperature must be 0..{MAX_TEMPERATURE} and retry_temperature_step >= 0")
        if problems:
            raise GifaConfigError("invalid GIFA config: " + "; ".join(problems))
        return self

    def attempt_temperature(self, attempt: int) -> float:
        return round(min(MAX_TEMPERATURE, self.temperature + attempt * self.retry_temperature_step), 6)

    def attempt_seed(self, attempt: int) -> int:
        # Attempts past the first run's (only --retry-failed makes them) vary the seed too, so that
        # they stay fresh requests once the temperature is capped.
        return self.seed if attempt <= self.max_retries else self.seed + attempt

    def request_max_tokens(self, n_messages: int) -> int:
        return min(self.max_tokens, 8 + self.tokens_per_message * n_messages)

    @classmethod
    def field_help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}


class _State:
    """Catalog + index + labels built so far; `apply` is the only way they change (merge in order)."""

    def __init__(self, dataset: Dataset, embeddings: np.ndarray, config: GifaConfig):
        self.config = config
        self.catalog = IntentCatalog(max_examples=max(5, config.top_n))
        self.index = RetrievalIndex(embeddings, [m.key for m in dataset.messages], seed=config.seed,
                                    ann_threshold=config.ann_threshold)
        self.labels: dict[tuple[int, int], str] = {}
        self.failures: list[dict] = []
        # intent -> its KnownIntent as last shown; dropped whenever apply() touches that intent (its
        # examples or description may change), so prompts equal freshly built entries.
        self._shown: dict[str, KnownIntent] = {}

    def known(self, conversation: Conversation) -> list[KnownIntent]:
        names = self.index.known_intents([m.key for m in conversation.messages], self.config.top_k)
        shown, out = self._shown, []
        for name in names:
            entry = shown.get(name)
            if entry is None:
                e = self.catalog[name]
                entry = shown[name] = KnownIntent(name, e.description, tuple(e.examples[: self.config.top_n]))
            out.append(entry)
        return out

    def apply(self, conversation: Conversation, outcome: ConversationOutcome) -> None:
        if outcome.labels is None:
            failure = {"conversation_number": conversation.number, "reason": outcome.reason,
                       "attempts": outcome.attempts, "last_reply": outcome.last_reply[:300]}
            if outcome.status is not None:
                failure["status"] = outcome.status
            self.failures.append(failure)
            return
        keys = [m.key for m in conversation.messages]
        for message, key, intent in zip(conversation.messages, keys, outcome.labels):
            self.catalog.add(intent, message.text)
            self.labels[key] = intent
            self._shown.pop(intent, None)
        for name, description in outcome.descriptions.items():
            self.catalog.set_description(name, description)
            self._shown.pop(name, None)
        self.index.add(keys, outcome.labels)


def _label_one(conversation: Conversation, messages: tuple[dict, ...], known_names: frozenset[str], lm: LM,
               config: GifaConfig, previous: ConversationOutcome | None = None) -> ConversationOutcome:
    """Call, parse, retry; then (method general) describe intents new to the snapshot.

    `previous` is a recorded failure being retried: its attempts and costs carry over, and the new
    attempts are numbered after its own.
    """
    outcome = ConversationOutcome(number=conversation.number, labels=None)
    first = 0
    if previous is not None:
        first = previous.attempts
        outcome.calls, outcome.cached_calls = previous.calls, previous.cached_calls
        outcome.prompt_tokens, outcome.completion_tokens = previous.prompt_tokens, previous.completion_tokens
    n = len(conversation.messages)
    if n == 0:
        outcome.labels = []
        return outcome
    errors = []
    for attempt in range(first, first + config.max_retries + 1):
        request = CompletionRequest(messages=messages, temperature=config.attempt_temperature(attempt),
                                    max_tokens=config.request_max_tokens(n), seed=config.attempt_seed(attempt),
                                    stop=ROLE_STOP if config.stop_on_role_prefix else None)
        outcome.attempts = attempt + 1
        try:
            completion = lm.complete(request)
        except RequestRejected as err:
            # This request alone is refused (too long, bad parameter): asking again sends the same
            # prompt, so the conversation fails here with the server's reason and the run goes on.
            outcome.status = err.status
            outcome.reason = f"HTTP {err.status}: {err.server_message}"
            logger.warning("conversation %s: %s", conversation.number, outcome.reason)
            return outcome
        outcome.count(completion)
        outcome.last_reply = completion.text
        try:
            outcome.labels = parse_intents(completion.text, n)
            break
        except ParseError as err:
            errors.append(str(err))
            logger.debug("conversation %s attempt %d: %s", conversation.number, attempt + 1, err)
    if outcome.labels is None:
        outcome.reason = f"no usable answer in {outcome.attempts} attempt(s); last: {errors[-1]}"
        return outcome
    if config.method == "general":
        new: dict[str, list[str]] = {}
        for message, intent in zip(conversation.messages, outcome.labels):
            if intent not in known_names:
                new.setdefault(intent, []).append(message.line)
        descriptions, completion = describe_intents(lm, new, seed=config.seed)
        if completion is not None:
            outcome.count(completion)
        outcome.descriptions = descriptions
    return outcome


def _embed_all(dataset: Dataset, embedder: Embedder, batch_size: int, out_dir: Path | None,
               workers: int = 1) -> tuple[np.ndarray, int]:
    """Embeddings of all messages (`customer: text` lines), batched; (vectors, embedder calls made).

    Reused from memory when the same embedder object already embedded the same texts (prompt search
    labels one dataset many times), and from out_dir when resuming. Up to `workers` batches are in
    flight at once (a remote embedder answers them in parallel); rows keep the message order.
    """
    texts = [m.line for m in dataset.messages]
    digest = hashlib.sha256(json.dumps([embedder.model, texts], ensure_ascii=False).encode("utf-8")).hexdigest()
    try:
        memo = _EMBEDDING_MEMO.setdefault(embedder, {})
    except TypeError:  # an embedder that cannot be weakly referenced
        memo = {}
    vectors, calls = memo.get(digest), 0
    if vectors is None and out_dir is not None:
        vectors = _read_embedding_cache(out_dir, digest, len(texts))
    if vectors is None:
        batches = [texts[s:s + batch_size] for s in range(0, len(texts), batch_size)]
        embed = lambda batch: np.asarray(embedder.embed(batch), dtype=np.float32)  # noqa: E731
        if workers > 1 and len(batches) > 1:
            with ThreadPoolExecutor(max_workers=min(workers, len(batches)), thread_name_prefix="gifa-embed") as pool:
                chunks = list(pool.map(embed, batches))
        else:
            chunks = [embed(b) for b in batches]
        calls = len(chunks)
        vectors = np.concatenate(chunks) if chunks else np.zeros((0, 1), dtype=np.float32)
        if out_dir is not None:
            _write_embedding_cache(out_dir, digest, embedder.model, vectors)
    if digest not in memo:
        while len(memo) >= _MEMO_PER_EMBEDDER:
            memo.pop(next(iter(memo)))
        memo[digest] = vectors
    return vectors, calls


EMBEDDING_CACHE = ("embeddings.npy", "embeddings.json")


def _read_embedding_cache(out_dir: Path, digest: str, n: int) -> np.ndarray | None:
    """The cached vectors when both files are whole and match these texts; None (rebuild) otherwise."""
    npy, meta = (out_dir / name for name in EMBEDDING_CACHE)
    if not (npy.exists() and meta.exists()):
        return None
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
        if not isinstance(info, dict) or info.get("digest") != digest:
            return None
        loaded = np.load(npy, allow_pickle=False).astype(np.float32)
    except (OSError, ValueError, EOFError, UnicodeDecodeError):  # torn by a killed run: rebuild it
        logger.warning("rebuilding the unreadable embedding cache in %s", out_dir)
        return None
    return loaded if loaded.ndim == 2 and loaded.shape[0] == n else None


def _write_embedding_cache(out_dir: Path, digest: str, model: str, vectors: np.ndarray) -> None:
    """Write both files through temporary names and rename, so a kill never leaves a torn cache."""
    npy, meta = (out_dir / name for name in EMBEDDING_CACHE)
    tmp = npy.with_name(npy.name + ".tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, vectors)
    tmp.replace(npy)
    tmp = meta.with_name(meta.name + ".tmp")
    tmp.write_text(json.dumps({"digest": digest, "model": model, "n": int(vectors.shape[0])}), encoding="utf-8")
    tmp.replace(meta)


def _run_header(config: GifaConfig, lm: LM, embedder: Embedder, run_settings: dict | None = None) -> dict:
    settings = {k: v for k, v in asdict(config).items() if k not in ("embed_batch_size", "embed_workers")}
    return {"kind": "gifa-progress", "format": PROGRESS_FORMAT, "lm": lm.model, "embedder": embedder.model,
            "config": settings, **(run_settings or {})}


def label_dataset(dataset: Dataset, lm: LM, embedder: Embedder, config: GifaConfig | None = None,
                  out_dir: str | Path | None = None, progress: bool = True, retry_failed: bool = False,
                  run_settings: dict | None = None) -> LabelingResult:
    """Label every message of `dataset` with GIFA; failed conversations are listed in `result.failures`.

    With `out_dir`, progress is written as it goes and a rerun resumes without relabeling;
    `retry_failed` relabels the failures recorded there. `run_settings` (e.g. {"redact": True}) are
    settings outside GifaConfig that change the prompts: they go into the progress header, so a resume
    under other values is refused.
    """
    config = (config or GifaConfig()).validate()
    started = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    # Embedding runs before any LM call, not beside the first window's calls (whose prompts need no
    # embeddings): tried, and against one server the extra requests in flight drew 429s that halved
    # the concurrency limit, costing more than the round trip it saved (live_throughput.py, 8 slots).
    embeddings, embed_calls = _embed_all(dataset, embedder, config.embed_batch_size, out, config.embed_workers)
    state = _State(dataset, embeddings, config)
    tracker = ProgressFile(out, _run_header(config, lm, embedder, run_settings)) if out is not None else None
    finished = tracker.finished(dataset) if tracker is not None else {}
    if finished:
        logger.info("resuming after %d finished conversation(s) from %s", len(finished), tracker.path)
    conversations = dataset.conversations
    bar = tqdm(total=len(dataset), unit="conv", desc="GIFA", disable=not progress)
    pool = ThreadPoolExecutor(max_workers=config.window, thread_name_prefix="gifa") if config.window > 1 else None
    outcomes: list[ConversationOutcome] = []
    session_calls = retried = 0
    try:
        # Windows are cut from the whole dataset, never from what is left to do: a resumed run meets
        # the same window boundaries, hence the same snapshots and the same requests.
        for start in range(0, len(conversations), config.window):
            window = conversations[start:start + config.window]
            todo = [c for c in window if c.number not in finished
                    or (retry_failed and finished[c.number].labels is None)]
            futures: dict[int, object] = {}
            if todo:
                # The snapshot: every prompt of this window is built before any of its answers is merged.
                # Only method general reads it (which intents are new, to describe them); copying the
                # whole catalog for every window would be O(intents) per conversation for nothing.
                known_names = frozenset(state.catalog.names) if config.method == "general" else frozenset()
                jobs = [(c, build_labeling_messages(config.instruction, c, config.method, state.known(c),
                                                    worked_example=config.worked_example), finished.get(c.number))
                        for c in todo]
                if pool is None or len(jobs) == 1:
                    futures = {c.number: _Done(_label_one(c, p, known_names, lm, config, prev)) for c, p, prev in jobs}
                else:
                    futures = {c.number: pool.submit(_label_one, c, p, known_names, lm, config, prev)
                               for c, p, prev in jobs}
            for conversation in window:
                if conversation.number in futures:
                    outcome = futures[conversation.number].result()  # raises in order
                    session_calls += outcome.calls - (finished[conversation.number].calls
                                                      if conversation.number in finished else 0)
                    retried += int(conversation.number in finished)
                    if tracker is not None:
                        tracker.append(conversation, outcome)
                else:
                    outcome = finished[conversation.number]
                state.apply(conversation, outcome)
                outcomes.append(outcome)
                bar.update(1)
                if progress:  # formatting the postfix costs even when the bar is off
                    bar.set_postfix(intents=len(state.catalog), failed=len(state.failures), refresh=False)
    finally:
        bar.close()
        if tracker is not None:
            tracker.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    stats = _stats(outcomes, state, dataset, config, lm, embed_calls, session_calls, len(finished),
                   time.perf_counter() - started)
    stats["retried_failures"] = retried
    return LabelingResult(labels=state.labels, catalog=state.catalog.to_frame(), stats=stats,
                          failures=list(state.failures))


class _Done:
    """A finished result with the Future interface (the sequential path runs calls inline)."""

    def __init__(self, value: ConversationOutcome):
        self._value = value

    def result(self) -> ConversationOutcome:
        return self._value


def _stats(outcomes: Sequence[ConversationOutcome], state: _State, dataset: Dataset, config: GifaConfig, lm: LM,
           embed_calls: int, session_calls: int, resumed: int, seconds: float) -> dict:
    calls = sum(o.calls for o in outcomes)
    cached = sum(o.cached_calls for o in outcomes)
    stats = {
        "labeler": "gifa", "method": config.method, "window": config.window, "lm": lm.model,
        "conversations": len(dataset), "messages": dataset.n_messages, "labeled_messages": len(state.labels),
        "intents": len(state.catalog),
        "calls": calls, "live_calls": calls - cached, "cached_calls": cached,
        "prompt_tokens": sum(o.prompt_tokens for o in outcomes),
        "completion_tokens": sum(o.completion_tokens for o in outcomes),
        "retries": sum(max(0, o.attempts - 1) for o in outcomes),
        "failures": len(state.failures),
        "embed_calls": embed_calls, "resumed_conversations": resumed, "calls_this_session": session_calls,
        "seconds": round(seconds, 3),
    }
    meter = getattr(lm, "meter", None)  # the UsageMeter of an LM built by igft.llm.factory.build_lm
    if meter is not None and hasattr(meter, "snapshot"):
        stats["usage"] = meter.snapshot()
    return stats
