"""Synthetic paraphrases for rare intents, asked of the configured LLM through igft's client layer.

For every intent with fewer than `min_count` (human-written) messages, the LLM is asked for
paraphrases of that intent's messages, one source message per call, cycling through them. A candidate
is kept only if it is not empty, not a copy of the prompt or the source, and not a duplicate (exact or
MinHash near, see igft.curate.dedup) of any message in the data or of a paraphrase already kept. Each
intent gets at most `min(min_count - count, max_per_intent)` synthetic messages.

Each synthetic message becomes its own one-message conversation (numbered after the data's last one)
with the source's role and intent and `synthetic=True`, so message-level consumers (classifiers)
gain examples of the rare intent without duplicating the rest of the source conversation, and
`igft.curate.marker.exclude_synthetic` drops them again. Requests carry a seed per call, so a
recorded run replays exactly.
"""
from __future__ import annotations

import json
import logging
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from igft.curate.dedup import DedupConfig, DuplicateIndex, normalise_text
from igft.curate.entities import CurateError
from igft.data import Conversation, Dataset, Message
from igft.llm.base import LM, CompletionRequest
from igft.llm.usage import BudgetExceeded

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = "You rewrite customer-support messages. You answer with the rewritten messages only."
PROMPT = ("Write {n} different paraphrases of this {role} message from a customer-support conversation. "
          "Keep its meaning and its purpose ({intent}). Keep placeholders such as {{{{EMAIL_1}}}} exactly as they are. "
          "Write one paraphrase per line, without numbering or quotes.\n\nMessage: {text}")
_BULLET = re.compile(r"^\s*(?:[-*\u2022]+|\(?\d{1,2}[.):]|paraphrase\s*\d*\s*[:.-])\s*", re.IGNORECASE)
_ROLE_PREFIX = re.compile(r"^\s*(?:customer|assistant|user|agent)\s*:\s*", re.IGNORECASE)


@dataclass
class SynthConfig:
    min_count: int = 5
    max_per_intent: int = 10
    paraphrases_per_call: int = 3
    max_calls_per_intent: int = 6
    max_intents: int | None = None
    temperature: float = 0.8
    max_tokens: int = 160
    seed: int = 0
    max_chars: int = 400
    dedup_threshold: float = 0.8

    @staticmethod
    def field_help() -> dict[str, str]:
        return {"min_count": "an intent is rare when it has fewer human-written messages than this (>= 1)",
                "max_per_intent": "at most this many synthetic messages per intent",
                "paraphrases_per_call": "paraphrases asked for in one LLM call",
                "max_calls_per_intent": "stop asking for an intent after this many calls",
                "max_intents": "augment only the N rarest intents (default: all rare ones)",
                "temperature": "sampling temperature of the paraphrase calls",
                "max_tokens": "completion token limit per call",
                "seed": "base seed; call k of a run sends seed+k",
                "max_chars": "drop paraphrases longer than this",
                "dedup_threshold": "drop paraphrases whose MinHash Jaccard with the data or a kept paraphrase is at least this"}

    def validate(self) -> "SynthConfig":
        if self.min_count < 1:
            raise CurateError(f"--min-count must be at least 1 (an intent is rare below it), got {self.min_count}")
        for name in ("max_per_intent", "paraphrases_per_call", "max_calls_per_intent", "max_tokens", "max_chars"):
            if getattr(self, name) < 1:
                raise CurateError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.max_intents is not None and self.max_intents < 1:
            raise CurateError(f"--max-intents must be at least 1, got {self.max_intents}")
        if not 0 < self.dedup_threshold <= 1:
            raise CurateError(f"--dedup-threshold must be in (0, 1], got {self.dedup_threshold}")
        return self


@dataclass
class IntentOutcome:
    intent: str
    human_count: int
    wanted: int
    accepted: int = 0
    calls: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


@dataclass
class SynthResult:
    augmented: Dataset  # the data followed by the synthetic conversations
    synthetic: list[dict]  # one record per synthetic message: its key, intent and source message key
    outcomes: list[IntentOutcome]
    stopped: str | None = None  # why the run stopped early (budget), else None

    def report(self) -> dict:
        return {"synthetic_messages": len(self.synthetic), "stopped": self.stopped,
                "intents": [asdict(o) for o in self.outcomes], "rows": self.synthetic}


def rare_intents(dataset: Dataset, min_count: int) -> list[tuple[str, int]]:
    """(intent, count of human-written messages) with count < min_count, rarest first, then by name."""
    counts = Counter(m.intent for m in dataset.messages if m.intent and not getattr(m, "synthetic", False))
    return sorted(((i, c) for i, c in counts.items() if c < min_count), key=lambda ic: (ic[1], ic[0]))


def parse_paraphrases(text: str) -> list[str]:
    """One candidate per non-empty line, without bullets, numbering, quotes or a role prefix."""
    out = []
    for line in text.splitlines():
        line = _ROLE_PREFIX.sub("", _BULLET.sub("", line)).strip().strip('"\u201c\u201d\'').strip()
        if line:
            out.append(line)
    return out


def _reject_reason(candidate: str, source: Message, config: SynthConfig, index: DuplicateIndex) -> str | None:
    lowered = candidate.lower()
    if len(candidate) > config.max_chars:
        return "too_long"
    if len(normalise_text(candidate)) < 2:
        return "empty"
    if lowered.startswith(("message:", "write ", "here are", "sure")) or "paraphrase" in lowered:
        return "prompt_echo"
    if normalise_text(candidate) == normalise_text(source.text):
        return "copy_of_source"
    match = index.match(candidate)
    if match is not None:
        return f"{match[0]}_duplicate"
    return None


def synthesize(dataset: Dataset, lm: LM, config: SynthConfig | None = None, *, progress: bool = False) -> SynthResult:
    """Ask `lm` for paraphrases of rare intents' messages; return the data with the kept ones appended."""
    config = (config or SynthConfig()).validate()
    if not dataset.messages or not any(m.intent for m in dataset.messages):
        raise CurateError(f"{dataset.source} has no intents; label it first (igft label --out DIR) and pass DIR/labels.csv")
    index = DuplicateIndex(DedupConfig(threshold=config.dedup_threshold))
    for message in dataset.messages:
        index.add(message.text)
    by_intent: dict[str, list[Message]] = defaultdict(list)
    for message in dataset.messages:
        if message.intent and not getattr(message, "synthetic", False):
            by_intent[message.intent].append(message)
    targets = rare_intents(dataset, config.min_count)
    if config.max_intents is not None:
        targets = targets[:config.max_intents]
    next_number = max(dataset.numbers, default=-1) + 1
    new_conversations, rows, outcomes = [], [], []
    call_number, stopped = 0, None
    for intent, count in tqdm(targets, desc="synth", unit="intent", disable=not progress):
        outcome = IntentOutcome(intent, count, min(config.min_count - count, config.max_per_intent))
        outcomes.append(outcome)
        rejected: Counter = Counter()
        sources = by_intent[intent]
        while outcome.accepted < outcome.wanted and outcome.calls < config.max_calls_per_intent:
            source = sources[outcome.calls % len(sources)]
            request = CompletionRequest.from_prompt(
                PROMPT.format(n=config.paraphrases_per_call, role=source.role, intent=intent.replace("_", " "), text=source.text),
                system=SYSTEM_PROMPT, temperature=config.temperature, max_tokens=config.max_tokens,
                seed=config.seed + call_number)
            try:
                completion = lm.complete(request)
            except BudgetExceeded as err:
                stopped = str(err)
                break
            call_number += 1
            outcome.calls += 1
            for candidate in parse_paraphrases(completion.text):
                if outcome.accepted >= outcome.wanted:
                    break
                reason = _reject_reason(candidate, source, config, index)
                if reason:
                    rejected[reason] += 1
                    continue
                index.add(candidate)
                message = Message(next_number, 0, source.role, candidate, intent, synthetic=True)
                new_conversations.append(Conversation(next_number, (message,)))
                rows.append({"conversation_number": next_number, "index": 0, "intent": intent,
                             "source_conversation_number": source.conversation_number, "source_index": source.index})
                next_number += 1
                outcome.accepted += 1
        outcome.rejected = dict(rejected)
        logger.info("synth %s: %d human, kept %d/%d synthetic in %d calls, rejected %s", intent, count,
                    outcome.accepted, outcome.wanted, outcome.calls, outcome.rejected)
        if stopped:
            logger.warning("synth stopped early: %s", stopped)
            break
    augmented = Dataset(list(dataset.conversations) + new_conversations, dataset.source)
    return SynthResult(augmented, rows, outcomes, stopped)


def write_synth_outputs(result: SynthResult, out_dir: str | Path, suffix: str = ".csv") -> dict[str, Path]:
    """augmented data (the input plus synthetic rows, marked) and synth_report.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"augmented": result.augmented.save(out / f"augmented{suffix}")}
    report = out / "synth_report.json"
    tmp = report.with_name(report.name + ".tmp")
    tmp.write_text(json.dumps(result.report(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(report)
    paths["report"] = report
    return paths
