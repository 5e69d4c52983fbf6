"""GIFA's append-only progress file: a header with the run's settings, then one line per finished conversation.

A rerun with the same settings reads it back and continues after the last finished conversation, so
nothing already paid for is asked again. A line cut by a killed run is dropped (that conversation is
redone); progress of other settings, other data or another order is refused with the fix.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path

from igft.data import Conversation, Dataset
from igft.errors import IgftError
from igft.llm.base import Completion

logger = logging.getLogger(__name__)

PROGRESS_FILE = "progress.jsonl"
PROGRESS_FORMAT = 1


class ProgressMismatch(IgftError):
    """The output folder holds progress of a different run."""


@dataclass
class ConversationOutcome:
    """What labeling one conversation produced (labels or a failure reason) and what it cost."""

    number: int
    labels: list[str] | None
    reason: str | None = None
    descriptions: dict[str, str] = field(default_factory=dict)
    attempts: int = 0
    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    last_reply: str = ""
    status: int | None = None  # the HTTP status of a request the endpoint rejected

    def count(self, completion: Completion) -> None:
        self.calls += 1
        self.cached_calls += int(bool(completion.cached))
        self.prompt_tokens += int(completion.prompt_tokens or 0)
        self.completion_tokens += int(completion.completion_tokens or 0)


_RECORDED = tuple(f.name for f in fields(ConversationOutcome) if f.name != "number")


def conversation_digest(conversation: Conversation) -> str:
    """Fingerprint of a conversation's messages: a progress line is reused only for the same content."""
    text = "\n".join(m.line for m in conversation.messages)
    return hashlib.sha256(f"{conversation.number}\n{text}".encode("utf-8")).hexdigest()[:16]


class ProgressFile:
    """Append-only progress.jsonl: a header with the run's settings, then one line per conversation."""

    def __init__(self, out_dir: Path, header: dict):
        self.path = out_dir / PROGRESS_FILE
        self.header = header
        self.records: dict[int, dict] = {}
        self.order: list[int] = []
        self._handle = None
        if self.path.exists():
            self._load()
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            self._write(header)

    def _load(self) -> None:
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        parsed, offset, keep = [], 0, len(raw)
        for number, line in enumerate(lines, start=1):
            start, offset = offset, offset + len(line) + 1
            if not line.strip():
                continue
            try:
                parsed.append(json.loads(line.decode("utf-8")))
            except (UnicodeDecodeError, json.JSONDecodeError):
                if number >= len(lines) - 1:  # a line cut by a killed run: drop it, that conversation is redone
                    logger.warning("%s: dropping a truncated last line", self.path)
                    keep = start
                    continue
                raise ProgressMismatch(f"{self.path} line {number} is not valid JSON; delete the file to start over")
        if not parsed or parsed[0].get("kind") != "gifa-progress":
            raise ProgressMismatch(f"{self.path} is not a GIFA progress file; use another --out folder")
        if parsed[0] != self.header:
            diff = sorted(k for k in set(parsed[0]) | set(self.header) if parsed[0].get(k) != self.header.get(k))
            inner = sorted(k for k in set(parsed[0].get("config", {})) | set(self.header["config"])
                           if parsed[0].get("config", {}).get(k) != self.header["config"].get(k))
            raise ProgressMismatch(
                f"{self.path} was written by a run with other settings ({', '.join(diff + inner)} differ); "
                f"use a new --out folder, or delete {PROGRESS_FILE} (or pass --overwrite) to start over")
        for record in parsed[1:]:
            if record["conversation_number"] not in self.records:
                self.order.append(record["conversation_number"])
            self.records[record["conversation_number"]] = record
        if keep < len(raw):
            with open(self.path, "r+b") as handle:
                handle.truncate(keep)
        elif raw and not raw.endswith(b"\n"):
            with open(self.path, "ab") as handle:
                handle.write(b"\n")

    def _write(self, record: dict) -> None:
        # One handle for the whole run (opening the file per conversation was a syscall pair each);
        # every line is flushed, so a kill -9 loses at most the line being written.
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def append(self, conversation: Conversation, outcome: ConversationOutcome) -> None:
        # The fields in order without asdict()'s deep copy (a quarter of a millisecond per conversation):
        # the line is serialised at once and an outcome is not changed after it is recorded.
        record = {"conversation_number": conversation.number, "digest": conversation_digest(conversation),
                  **{k: getattr(outcome, k) for k in _RECORDED}}
        self._write(record)
        if conversation.number not in self.records:
            self.order.append(conversation.number)
        self.records[conversation.number] = record

    def finished(self, dataset: Dataset) -> dict[int, ConversationOutcome]:
        """conversation number -> recorded outcome, for the finished conversations of `dataset`.

        First records must follow the data's conversation order (a window merges in order, a kill stops
        it anywhere); a retried failure is recorded again later, and its last record counts.
        """
        numbers = dataset.numbers
        if self.order != numbers[: len(self.order)]:
            raise ProgressMismatch(
                f"{self.path} holds conversations {self.order[:5]}… which are not the first conversations of "
                f"this data in order; use a new --out folder or delete {PROGRESS_FILE}")
        outcomes = {}
        known = {f for f in ConversationOutcome.__dataclass_fields__ if f != "number"}
        for conversation in dataset.conversations[: len(self.records)]:
            record = self.records[conversation.number]
            if record["digest"] != conversation_digest(conversation):
                raise ProgressMismatch(
                    f"conversation {conversation.number} changed since {self.path} was written; "
                    f"use a new --out folder or delete {PROGRESS_FILE}")
            kept = {k: record[k] for k in record if k in known}
            outcomes[conversation.number] = ConversationOutcome(number=conversation.number, **kept)
        return outcomes
