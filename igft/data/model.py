"""The conversation model: Message, Conversation, Dataset, roles and DataError. No file I/O here.

A message's identity is (conversation_number, index); nothing ever joins on message text. Gold
intents are the user's free strings (any non-empty text, stripped); only predicted intents are
normalised to snake_case, by the labelers that produce them.

Readers and writers (igft.data.readers / igft.data.writers) import this module, never the other
way round at import time; `Dataset.save` / `to_frame` / `from_frame` are conveniences that call
into them when used.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from igft.errors import IgftError

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    import pandas as pd

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
    # True for a message written by a generator (igft.curate / igft.synthetic), not by a person.
    synthetic: bool = False

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
    def has_synthetic(self) -> bool:
        return any(m.synthetic for m in self.messages)

    @property
    def numbers(self) -> list[int]:
        return [c.number for c in self.conversations]

    def subset(self, numbers: Iterable[int]) -> "Dataset":
        """The conversations with these numbers, in the order given."""
        numbers = list(numbers)
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

    # Conveniences over igft.data.writers / igft.data.readers (imported when called, so that this
    # module never depends on the I/O modules at import time).
    def to_frame(self) -> "pd.DataFrame":
        """The paper's CSV layout: conversation_number, conversation, index, intent (+ synthetic if any)."""
        from igft.data.writers import dataset_to_frame
        return dataset_to_frame(self)

    def save(self, path: "str | Path") -> "Path":
        """Write CSV (or JSONL when the path ends in .jsonl), atomically."""
        from igft.data.writers import save_dataset
        return save_dataset(self, path)

    @classmethod
    def from_frame(cls, frame: "pd.DataFrame", source: str = "<frame>") -> "Dataset":
        from igft.data.readers import dataset_from_frame
        return dataset_from_frame(frame, source)


def split_role(line: str) -> tuple[str, str] | None:
    """'customer: hi' -> ('customer', 'hi'); None when the prefix is not a known role."""
    head, sep, rest = str(line).partition(":")
    if not sep:
        return None
    role = ROLE_ALIASES.get(head.strip().lower())
    return (role, rest.strip()) if role else None
