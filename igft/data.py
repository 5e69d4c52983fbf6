"""Conversation datasets: load, validate, split, save.

Canonical CSV (the paper's toy format): columns `conversation_number`, `conversation` (the message
text with a `customer:` / `assistant:` prefix), `index` (position of the message inside its
conversation), optional `intent` (gold). A message's identity is (conversation_number, index);
nothing ever joins on message text. JSONL with OpenAI-style `messages` lists is accepted too.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd

from igft.errors import IgftError

ROLES = ("customer", "assistant")
# Accepted spellings of the two roles in a message prefix / an OpenAI-style `role` field.
ROLE_ALIASES = {"customer": "customer", "user": "customer", "client": "customer",
                "assistant": "assistant", "agent": "assistant", "support": "assistant"}
REQUIRED_COLUMNS = ("conversation_number", "conversation", "index")


class DataError(IgftError, ValueError):
    """Bad user data. str(error) is one line naming the file, row and column, and how to fix it."""


@dataclass(frozen=True)
class Message:
    conversation_number: int
    index: int
    role: str
    text: str
    intent: str | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.conversation_number, self.index)

    @property
    def line(self) -> str:
        """The message as the paper's CSV writes it: `customer: ...`."""
        return f"{self.role}: {self.text}"


@dataclass(frozen=True)
class Conversation:
    number: int
    messages: tuple[Message, ...]

    def __len__(self) -> int:
        return len(self.messages)


class Dataset:
    """An ordered list of conversations (file order is kept: GIFA's result depends on it)."""

    def __init__(self, conversations: Sequence[Conversation], source: str = "<memory>"):
        self.conversations = list(conversations)
        self.source = source

    def __len__(self) -> int:
        return len(self.conversations)

    def __iter__(self):
        return iter(self.conversations)

    def __repr__(self) -> str:
        return f"Dataset({self.source!r}, {len(self)} conversations, {self.n_messages} messages)"

    @property
    def messages(self) -> list[Message]:
        return [m for c in self.conversations for m in c.messages]

    @property
    def n_messages(self) -> int:
        return sum(len(c) for c in self.conversations)

    @property
    def has_gold(self) -> bool:
        msgs = self.messages
        return bool(msgs) and all(m.intent for m in msgs)

    @property
    def numbers(self) -> list[int]:
        return [c.number for c in self.conversations]

    def subset(self, numbers: Iterable[int]) -> "Dataset":
        """The conversations with these numbers, in the order given."""
        by_number = {c.number: c for c in self.conversations}
        missing = [n for n in numbers if n not in by_number]
        if missing:
            raise KeyError(f"conversation numbers not in {self.source}: {missing[:10]}")
        return Dataset([by_number[n] for n in numbers], self.source)

    def head(self, n: int) -> "Dataset":
        return Dataset(self.conversations[:n], self.source)

    def split(self, fractions: Sequence[float] = (0.8, 0.2), *, shuffle: bool = True, seed: int = 0) -> list["Dataset"]:
        """Split by conversation (never inside one). Sequential when shuffle=False, else seeded."""
        if abs(sum(fractions) - 1.0) > 1e-9 or any(f < 0 for f in fractions):
            raise ValueError(f"split fractions must be non-negative and sum to 1, got {list(fractions)}")
        order = list(self.conversations)
        if shuffle:
            random.Random(seed).shuffle(order)
        n = len(order)
        bounds, acc = [], 0.0
        for f in fractions[:-1]:
            acc += f
            bounds.append(round(acc * n))
        bounds = [0] + bounds + [n]
        return [Dataset(order[a:b], self.source) for a, b in zip(bounds, bounds[1:])]

    def with_intents(self, intents: Mapping[tuple[int, int], str]) -> "Dataset":
        """A copy whose messages carry the given intents (keyed by (conversation_number, index))."""
        convs = [Conversation(c.number, tuple(replace(m, intent=intents.get(m.key)) for m in c.messages))
                 for c in self.conversations]
        return Dataset(convs, self.source)

    def to_frame(self) -> pd.DataFrame:
        """The paper's CSV layout: conversation_number, conversation, index, intent."""
        rows = [{"conversation_number": m.conversation_number, "conversation": m.line, "index": m.index,
                 "intent": m.intent} for m in self.messages]
        return pd.DataFrame(rows, columns=["conversation_number", "conversation", "index", "intent"])

    def save(self, path: str | Path) -> Path:
        """Write CSV (or JSONL when the path ends in .jsonl), atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        if path.suffix == ".jsonl":
            import json
            with open(tmp, "w", encoding="utf-8") as f:
                for c in self.conversations:
                    msgs = [{"role": "user" if m.role == "customer" else "assistant", "content": m.text,
                             **({"intent": m.intent} if m.intent else {})} for m in c.messages]
                    f.write(json.dumps({"conversation_number": c.number, "messages": msgs}, ensure_ascii=False) + "\n")
        else:
            self.to_frame().to_csv(tmp, index=False)
        tmp.replace(path)
        return path

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, source: str = "<frame>") -> "Dataset":
        from igft.data_validation import dataset_from_frame
        return dataset_from_frame(frame, source)


def split_role(line: str) -> tuple[str, str] | None:
    """'customer: hi' -> ('customer', 'hi'); None when the prefix is not a known role."""
    head, sep, rest = str(line).partition(":")
    if not sep:
        return None
    role = ROLE_ALIASES.get(head.strip().lower())
    return (role, rest.strip()) if role else None


def load_conversations(path: str | Path) -> Dataset:
    """Load a conversation CSV or JSONL file; raise DataError (one clear line) on bad input."""
    from igft.data_validation import load_any
    return load_any(Path(path))


def save_labeled(dataset: Dataset, labels: Mapping[tuple[int, int], str], path: str | Path) -> Path:
    """Write `dataset` with the predicted `labels` as its intents (CSV, or JSONL for *.jsonl), atomically.

    Messages without a label get an empty intent; such a file loads again only without them (the
    loader refuses intents present in some rows only), so label every message or drop its conversation.
    """
    return dataset.with_intents(labels).save(path)
