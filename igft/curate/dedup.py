"""Drop exact and near-duplicate conversations and messages, keeping the first of each group.

Exact: equal after normalisation (Unicode NFKC, case-folded, punctuation and whitespace runs collapsed
to one space). Near: estimated Jaccard similarity of shingle sets at or above a threshold, found with
MinHash + LSH from datasketch (messages: character 5-grams, which suit short texts; conversations:
word 3-grams over `role: text` lines). Items are visited in file order and compared only with items
already kept, so every group keeps its first member and every dropped item names the kept one it
duplicates. Messages are compared only with messages of the same role ("Thank you" from the customer is
not the assistant's "Thank you").

Conversations are deduplicated first (Stage 2 trains on whole conversations); message-level dedup then
runs on what is left and is meant for message-level uses (classifier training, labeling cost): it
removes messages from inside conversations, renumbers the rest 0, 1, 2, ... (conversation files
allow no gaps; `dropped.csv` names the input's ids) and drops a conversation only when none of its
messages is left.
"""
from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import pandas as pd

from igft.curate.entities import CurateError
from igft.data import Conversation, Dataset

logger = logging.getLogger(__name__)
LEVELS = ("conversation", "message", "both")
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise_text(text: str) -> str:
    """Case, accents' composed forms, punctuation and spacing stop mattering: 'Thanks!!' == 'thanks'."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", str(text)).casefold()).strip()


@dataclass
class DedupConfig:
    level: str = "both"
    near: bool = True
    threshold: float = 0.8
    num_perm: int = 128
    message_shingle_chars: int = 5
    conversation_shingle_words: int = 3
    seed: int = 1

    @staticmethod
    def field_help() -> dict[str, str]:
        return {"level": "what to deduplicate: conversation, message or both (conversations first)",
                "near": "also drop near-duplicates (MinHash LSH), not only exact ones",
                "threshold": "near-duplicate when the estimated Jaccard similarity of shingles is at least this (0-1]",
                "num_perm": "MinHash permutations (more: a finer similarity estimate, slower)",
                "message_shingle_chars": "character n-gram size of message shingles",
                "conversation_shingle_words": "word n-gram size of conversation shingles",
                "seed": "MinHash seed"}

    def validate(self) -> "DedupConfig":
        if self.level not in LEVELS:
            raise CurateError(f"--level must be one of {', '.join(LEVELS)}, got {self.level!r}")
        if not 0 < self.threshold <= 1:
            raise CurateError(f"--threshold must be in (0, 1], got {self.threshold}")
        if self.num_perm < 16:
            raise CurateError(f"--num-perm must be at least 16, got {self.num_perm}")
        if self.message_shingle_chars < 1 or self.conversation_shingle_words < 1:
            raise CurateError("shingle sizes must be at least 1")
        return self


@dataclass(frozen=True)
class Dropped:
    """One dropped item and the kept item it duplicates (index is None at conversation level)."""

    level: str
    conversation_number: int
    index: int | None
    kept_conversation_number: int
    kept_index: int | None
    reason: str  # exact | near
    similarity: float  # 1.0 for exact, the MinHash Jaccard estimate for near
    intent_differs: bool = False  # both carried gold intents and they differ: a labeling conflict


@dataclass
class DedupResult:
    kept: Dataset
    dropped: list[Dropped] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return dict(Counter(f"{d.level}_{d.reason}" for d in self.dropped))

    def report(self, original: Dataset) -> dict:
        return {"conversations_in": len(original), "messages_in": original.n_messages,
                "conversations_kept": len(self.kept), "messages_kept": self.kept.n_messages,
                "dropped": self.counts(), "intent_conflicts": sum(d.intent_differs for d in self.dropped)}


def find_duplicates(texts: Sequence[str], shingles: Sequence[Sequence[str]] | None, config: DedupConfig,
                    groups: Sequence[str] | None = None) -> dict[int, tuple[int, str, float]]:
    """{i: (j, reason, similarity)} for every item i that duplicates an earlier kept item j.

    `texts` are already normalised; `shingles` (None: exact only) feed MinHash; items are compared only
    within the same `groups` value (e.g. the role).
    """
    groups = groups or [""] * len(texts)
    first_by_text: dict[tuple[str, str], int] = {}
    duplicates: dict[int, tuple[int, str, float]] = {}
    candidates = []
    for i, (text, group) in enumerate(zip(texts, groups)):
        key = (group, text)
        if key in first_by_text:
            duplicates[i] = (first_by_text[key], "exact", 1.0)
        else:
            first_by_text[key] = i
            candidates.append(i)
    if shingles is None or not config.near or not candidates:
        return duplicates
    from datasketch import MinHash, MinHashLSH

    hashes = MinHash.bulk([[s.encode("utf-8") for s in shingles[i]] for i in candidates],
                          num_perm=config.num_perm, seed=config.seed)
    index_by_group: dict[str, MinHashLSH] = {}
    kept_hashes = {}
    for i, minhash in zip(candidates, hashes):
        lsh = index_by_group.get(groups[i])
        if lsh is None:  # (not setdefault: building an LSH solves for its bands, ~0.2 s)
            lsh = index_by_group[groups[i]] = MinHashLSH(threshold=_lsh_threshold(config), num_perm=config.num_perm)
        best = None
        for j in lsh.query(minhash):
            similarity = minhash.jaccard(kept_hashes[j])
            if similarity >= config.threshold and (best is None or j < best[0]):
                best = (j, similarity)
        if best is not None:
            duplicates[i] = (best[0], "near", round(float(best[1]), 4))
        else:
            lsh.insert(i, minhash)
            kept_hashes[i] = minhash
    return duplicates


def _lsh_threshold(config: DedupConfig) -> float:
    """LSH only proposes candidates (each is then checked against config.threshold); above ~0.95 datasketch
    cannot build bands, so cap it there."""
    return min(config.threshold, 0.9)


def _char_shingles(text: str, n: int) -> list[str]:
    if len(text) <= n:
        return [text]
    return [text[k:k + n] for k in range(len(text) - n + 1)]


def _word_shingles(text: str, n: int) -> list[str]:
    words = text.split()
    if len(words) <= n:
        return [" ".join(words)]
    return [" ".join(words[k:k + n]) for k in range(len(words) - n + 1)]


def _conversation_text(conversation: Conversation) -> str:
    return "\n".join(f"{m.role} {normalise_text(m.text)}" for m in conversation.messages)


def _differs(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and a != b


def dedup_conversations(dataset: Dataset, config: DedupConfig) -> DedupResult:
    texts = [_conversation_text(c) for c in dataset.conversations]
    shingles = [_word_shingles(t, config.conversation_shingle_words) for t in texts] if config.near else None
    duplicates = find_duplicates(texts, shingles, config)
    convs = dataset.conversations
    dropped = []
    for i, (j, reason, similarity) in sorted(duplicates.items()):
        intents_a = tuple(m.intent for m in convs[i].messages)
        intents_b = tuple(m.intent for m in convs[j].messages)
        conflict = reason == "exact" and all(intents_a) and all(intents_b) and intents_a != intents_b
        dropped.append(Dropped("conversation", convs[i].number, None, convs[j].number, None, reason, similarity, conflict))
    kept = [c for k, c in enumerate(convs) if k not in duplicates]
    return DedupResult(Dataset(kept, dataset.source), dropped)


def dedup_messages(dataset: Dataset, config: DedupConfig) -> DedupResult:
    messages = dataset.messages
    texts = [normalise_text(m.text) for m in messages]
    shingles = [_char_shingles(t, config.message_shingle_chars) for t in texts] if config.near else None
    duplicates = find_duplicates(texts, shingles, config, groups=[m.role for m in messages])
    dropped = [Dropped("message", messages[i].conversation_number, messages[i].index,
                       messages[j].conversation_number, messages[j].index, reason, similarity,
                       _differs(messages[i].intent, messages[j].intent))
               for i, (j, reason, similarity) in sorted(duplicates.items())]
    dropped_keys = {(d.conversation_number, d.index) for d in dropped}
    kept = []
    for conversation in dataset.conversations:
        left = [m for m in conversation.messages if m.key not in dropped_keys]
        if left:
            # Renumber 0, 1, 2, ...: conversation files may have no gaps (dropped.csv keeps the input's ids).
            kept.append(Conversation(conversation.number, tuple(replace(m, index=k) for k, m in enumerate(left))))
    return DedupResult(Dataset(kept, dataset.source), dropped)


def deduplicate(dataset: Dataset, config: DedupConfig | None = None) -> DedupResult:
    """Conversations first, then messages (per `config.level`); the first of each group is kept."""
    config = (config or DedupConfig()).validate()
    result = DedupResult(dataset)
    if config.level in ("conversation", "both"):
        result = dedup_conversations(dataset, config)
    if config.level in ("message", "both"):
        by_message = dedup_messages(result.kept, config)
        result = DedupResult(by_message.kept, result.dropped + by_message.dropped)
    logger.info("dedup: kept %d/%d conversations, %d/%d messages; dropped %s", len(result.kept), len(dataset),
                result.kept.n_messages, dataset.n_messages, result.counts())
    return result


def dropped_frame(dropped: Sequence[Dropped]) -> pd.DataFrame:
    columns = [f for f in Dropped.__dataclass_fields__]
    frame = pd.DataFrame([asdict(d) for d in dropped], columns=columns)
    for column in ("index", "kept_index"):
        frame[column] = frame[column].astype("Int64")
    return frame


def write_dedup_outputs(result: DedupResult, original: Dataset, out_dir: str | Path, suffix: str = ".csv") -> dict[str, Path]:
    """kept data (deduplicated.csv / .jsonl), dropped.csv (what and why), dedup_report.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"kept": result.kept.save(out / f"deduplicated{suffix}")}
    dropped_path = out / "dropped.csv"
    tmp = dropped_path.with_name(dropped_path.name + ".tmp")
    dropped_frame(result.dropped).to_csv(tmp, index=False)
    tmp.replace(dropped_path)
    paths["dropped"] = dropped_path
    report_path = out / "dedup_report.json"
    report_path.write_text(json.dumps(result.report(original), indent=2) + "\n", encoding="utf-8")
    paths["report"] = report_path
    return paths


class DuplicateIndex:
    """Incremental exact + near-duplicate lookup of messages (used to screen generated text against data)."""

    def __init__(self, config: DedupConfig | None = None):
        from datasketch import MinHashLSH

        self.config = (config or DedupConfig()).validate()
        self._exact: set[str] = set()
        self._lsh = MinHashLSH(threshold=_lsh_threshold(self.config), num_perm=self.config.num_perm)
        self._hashes: dict[int, object] = {}

    def _minhash(self, normalised: str):
        from datasketch import MinHash

        minhash = MinHash(num_perm=self.config.num_perm, seed=self.config.seed)
        minhash.update_batch([s.encode("utf-8") for s in _char_shingles(normalised, self.config.message_shingle_chars)])
        return minhash

    def match(self, text: str) -> tuple[str, float] | None:
        """('exact', 1.0) / ('near', jaccard) when `text` duplicates an added text, else None."""
        normalised = normalise_text(text)
        if normalised in self._exact:
            return ("exact", 1.0)
        if not self.config.near:
            return None
        minhash = self._minhash(normalised)
        best = max((minhash.jaccard(self._hashes[k]) for k in self._lsh.query(minhash)), default=0.0)
        return ("near", round(float(best), 4)) if best >= self.config.threshold else None

    def add(self, text: str) -> None:
        normalised = normalise_text(text)
        if normalised in self._exact:
            return
        self._exact.add(normalised)
        if self.config.near:
            key = len(self._hashes)
            self._hashes[key] = self._minhash(normalised)
            self._lsh.insert(key, self._hashes[key])
