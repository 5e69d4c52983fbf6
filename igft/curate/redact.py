"""Replace PII in conversations with typed placeholders that stay consistent within a conversation.

The same address twice in one conversation becomes `{{EMAIL_1}}` twice, a second address `{{EMAIL_2}}`,
so labels and replies still make sense ("I sent it to {{EMAIL_1}}" / "I see {{EMAIL_1}} on file").
Numbering restarts in every conversation: no placeholder links two customers. The replacement itself
is done by Presidio's anonymizer with a custom operator that looks the value up in the conversation's
placeholder book.

The report counts detections and distinct values per type; it never holds a detected value, and
nothing here logs one.
"""
from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

from tqdm.auto import tqdm

from igft.curate.detect import DetectorConfig, PiiDetector, Span
from igft.curate.entities import ENTITY_TYPES, placeholder
from igft.data import Conversation, Dataset

logger = logging.getLogger(__name__)
REPORT_FILE = "redaction_report.json"
_EXISTING = re.compile(r"\{\{([A-Z]+)_(\d+)\}\}")


def normalise_value(entity_type: str, value: str) -> str:
    """The form under which two mentions count as the same value (same placeholder)."""
    if entity_type in ("PHONE", "CARD"):
        return re.sub(r"\D", "", value)
    if entity_type == "IBAN":
        return value.replace(" ", "").upper()
    if entity_type == "URL":
        return value.rstrip("/.").lower()
    return " ".join(value.split()).casefold()


class PlaceholderBook:
    """Placeholders of one conversation: (type, normalised value) -> {{TYPE_n}}, numbered by first mention."""

    def __init__(self, texts: Iterable[str] = ()):
        self._by_value: dict[tuple[str, str], str] = {}
        self._counts: Counter = Counter()
        # Placeholders already in the text (data redacted before, e.g. without PERSON) keep their
        # numbers: new values of a type are numbered after them, never reusing {{EMAIL_1}}.
        for text in texts:
            for entity_type, number in _EXISTING.findall(text):
                self._counts[entity_type] = max(self._counts[entity_type], int(number))
        self._existing = Counter(self._counts)

    def placeholder_for(self, entity_type: str, value: str) -> str:
        key = (entity_type, normalise_value(entity_type, value))
        if key not in self._by_value:
            self._counts[entity_type] += 1
            self._by_value[key] = placeholder(entity_type, self._counts[entity_type])
        return self._by_value[key]

    @property
    def distinct(self) -> Counter:
        """Placeholders this book created (not those already in the text)."""
        return Counter({t: n - self._existing[t] for t, n in self._counts.items() if n > self._existing[t]})


@dataclass
class RedactionReport:
    """What was redacted, as counts only."""

    entity_types: list[str]  # types searched for
    not_covered: dict[str, str]  # type -> why it could not be searched for
    detections: dict[str, int] = field(default_factory=dict)  # mentions replaced per type
    distinct_values: dict[str, int] = field(default_factory=dict)  # placeholders created per type (summed over conversations)
    messages: int = 0
    messages_changed: int = 0
    conversations: int = 0
    conversations_changed: int = 0

    def to_dict(self) -> dict:
        return {"entity_types": self.entity_types, "not_covered": self.not_covered,
                "detections": self.detections, "distinct_values": self.distinct_values,
                "messages": self.messages, "messages_changed": self.messages_changed,
                "conversations": self.conversations, "conversations_changed": self.conversations_changed}

    def summary(self) -> str:
        counts = ", ".join(f"{t} {self.detections.get(t, 0)}" for t in self.entity_types)
        line = (f"redacted {sum(self.detections.values())} mentions in {self.messages_changed}/{self.messages} "
                f"messages of {self.conversations_changed}/{self.conversations} conversations ({counts})")
        if self.not_covered:
            line += "; not covered: " + ", ".join(self.not_covered)
        return line


class Redactor:
    """Redacts texts and datasets with one PiiDetector (built once: building Presidio takes ~1 s)."""

    def __init__(self, config: DetectorConfig | None = None, detector: PiiDetector | None = None):
        self.detector = detector or PiiDetector(config)
        from presidio_anonymizer import AnonymizerEngine

        self._anonymizer = AnonymizerEngine()

    def redact_text(self, text: str, book: PlaceholderBook, counts: Counter | None = None) -> str:
        spans = self.detector.find(text)
        if not spans:
            return text
        return self.apply(text, spans, book, counts)

    def apply(self, text: str, spans: list[Span], book: PlaceholderBook, counts: Counter | None = None) -> str:
        """`text` with `spans` (from self.detector.find) replaced by the book's placeholders."""
        from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

        # Number placeholders in reading order before the anonymizer runs (it edits from the end).
        for span in spans:
            book.placeholder_for(span.entity_type, text[span.start:span.end])
            if counts is not None:
                counts[span.entity_type] += 1
        operators = {t: OperatorConfig("custom", {"lambda": _lookup(book, t)}) for t in {s.entity_type for s in spans}}
        results = [RecognizerResult(s.entity_type, s.start, s.end, s.score) for s in spans]
        return self._anonymizer.anonymize(text=text, analyzer_results=results, operators=operators).text

    def redact_conversation(self, conversation: Conversation, counts: Counter | None = None) -> tuple[Conversation, PlaceholderBook]:
        book = PlaceholderBook(m.text for m in conversation.messages)
        messages = tuple(replace(m, text=self.redact_text(m.text, book, counts)) for m in conversation.messages)
        return Conversation(conversation.number, messages), book

    def redact_dataset(self, dataset: Dataset, *, progress: bool = False) -> tuple[Dataset, RedactionReport]:
        report = RedactionReport(entity_types=list(self.detector.entity_types),
                                 not_covered=dict(self.detector.not_covered))
        counts: Counter = Counter()
        distinct: Counter = Counter()
        conversations = []
        for conversation in tqdm(dataset.conversations, desc="redact", unit="conv", disable=not progress):
            redacted, book = self.redact_conversation(conversation, counts)
            distinct.update(book.distinct)
            changed = sum(a.text != b.text for a, b in zip(conversation.messages, redacted.messages))
            report.messages += len(conversation)
            report.messages_changed += changed
            report.conversations += 1
            report.conversations_changed += bool(changed)
            conversations.append(redacted)
        report.detections = {t: counts.get(t, 0) for t in report.entity_types}
        report.distinct_values = {t: distinct.get(t, 0) for t in report.entity_types}
        logger.info("%s", report.summary())
        return Dataset(conversations, dataset.source), report


def _lookup(book: PlaceholderBook, entity_type: str):
    return lambda value: book.placeholder_for(entity_type, value)


def redact_dataset(dataset: Dataset, entity_types: Iterable[str] | None = None, *, ner_model: str | None = None,
                   progress: bool = False) -> tuple[Dataset, RedactionReport]:
    """Redact `dataset` (all types with a detector when entity_types is None); return it and the report."""
    from igft.curate.entities import parse_entity_types

    config = DetectorConfig(entity_types=parse_entity_types(entity_types), ner_model=ner_model)
    return Redactor(config).redact_dataset(dataset, progress=progress)


def redact_before_calls(dataset: Dataset, out_dir: str | Path, entity_types: Iterable[str] | None = None) -> Dataset:
    """What `igft label --redact` runs right after loading: the redacted dataset; the report goes to
    out_dir/redaction_report.json. Called before any model is built, so no request sees a raw value."""
    redacted, report = redact_dataset(dataset, entity_types)
    write_report(report, Path(out_dir) / REPORT_FILE)
    if report.not_covered:
        logger.warning("--redact: not covered: %s", "; ".join(f"{t} ({r})" for t, r in report.not_covered.items()))
    logger.info("--redact: %s", report.summary())
    return redacted


def write_report(report: RedactionReport, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = ["ENTITY_TYPES", "PlaceholderBook", "RedactionReport", "Redactor", "redact_dataset", "redact_before_calls",
           "write_report", "normalise_value"]
