"""Validating raw conversation records into an igft.data Dataset (the rules every reader shares).

Every problem raises DataError with ONE line: the file, the line a user sees in an editor (1-based,
the header is line 1; for a multi-line quoted CSV field, the line where the record starts), the
column (CSV) or field (JSONL), what is wrong, and the fix. Nothing joins on text; a message's
identity is (conversation_number, index) and index must run 0, 1, 2, ... inside each conversation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from igft.data.model import Conversation, DataError, Dataset, Message, split_role

HEADER_HINT = "conversation_number,conversation,index[,intent]"


@dataclass
class RawRow:
    """One raw record and where it came from, before validation."""

    where: str                      # "line 7" (file) or "row 5" (DataFrame)
    conversation_number: Any
    index: Any
    text: Any                       # with role prefix (CSV) or without (JSONL)
    role: str | None                # JSONL gives it separately; None means: parse the prefix of text
    intent: Any
    columns: tuple[str, str, str, str] = ("conversation_number", "index", "conversation", "intent")
    kind: str = "column"            # how the error names a place: "column" (CSV) or "field" (JSONL)
    synthetic: Any = None           # optional 0/1 marker (absent = 0)


def short_repr(value: Any, limit: int = 40) -> str:
    text = repr(str(value))
    return text if len(text) <= limit else text[:limit - 4] + "...'"


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def parse_whole_number(value: Any, source: str, where: str, column: str, what: str, kind: str = "column") -> int:
    """Whole numbers only ('3' and 3.0 are fine; '3a', 2.5, True are not)."""
    if is_missing(value):
        raise DataError(f"{source}: {where}, {kind} {column!r}: empty value; give every message its {what}")
    if isinstance(value, bool):
        ok = False
    elif isinstance(value, int):
        return value
    else:
        try:
            number = float(str(value).strip())
            ok = number.is_integer()
        except ValueError:
            ok = False
    if not ok:
        raise DataError(f"{source}: {where}, {kind} {column!r}: {short_repr(value)} is not an integer; "
                        f"the {what} must be a whole number (0, 1, 2, ...)")
    return int(number)


def parse_flag(value: Any, source: str, where: str, column: str, kind: str = "column") -> bool:
    """An optional 0/1 column (true/false, yes/no accepted); empty or absent = False."""
    if is_missing(value):
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "1.0", "true", "yes"):
        return True
    if text in ("0", "0.0", "false", "no"):
        return False
    raise DataError(f"{source}: {where}, {kind} {column!r}: {short_repr(value)} is not 0 or 1; "
                    "mark generated messages with 1 and the others with 0 (or leave the cell empty)")


def validate_rows(rows: Iterable[RawRow], source: str, empty_hint: str = "") -> Dataset:
    """Turn raw rows into a Dataset, checking every rule named in the module docstring."""
    rows = list(rows)
    if not rows:
        raise DataError(f"{source}: line 1: no messages in the file; "
                        f"{empty_hint or 'add one row per message under the header ' + HEADER_HINT}")
    conversations: dict[int, list[tuple[RawRow, Message]]] = {}
    first_seen: dict[tuple[int, int], str] = {}
    intent_rows: list[RawRow] = []
    empty_intent_rows: list[RawRow] = []
    for row in rows:
        c_conv, c_index, c_text, c_intent = row.columns
        place = f"{source}: {row.where}, {row.kind}"
        number = parse_whole_number(row.conversation_number, source, row.where, c_conv, "conversation number", row.kind)
        index = parse_whole_number(row.index, source, row.where, c_index, "message position (index)", row.kind)
        if index < 0:
            raise DataError(f"{place} {c_index!r}: negative index {index}; "
                            "number the messages of each conversation 0, 1, 2, ...")
        if is_missing(row.text):
            raise DataError(f"{place} {c_text!r}: empty message; "
                            "give every row its text (drop the row if the message does not exist)")
        if row.role is None:
            parsed = split_role(str(row.text))
            if parsed is None:
                head = str(row.text).partition(":")[0].strip()
                found = f"unknown role prefix {short_repr(head + ':')}" if ":" in str(row.text) else "no role prefix"
                raise DataError(f"{place} {c_text!r}: {found}; start the text with "
                                "'customer:' or 'assistant:' (also accepted: user, client, agent, support)")
            role, text = parsed
        else:
            role, text = row.role, str(row.text).strip()
        if not text:
            raise DataError(f"{place} {c_text!r}: empty message text after '{role}:'; "
                            "write the message after the role prefix or drop the row")
        key = (number, index)
        if key in first_seen:
            raise DataError(f"{place} {c_index!r}: duplicate message (conversation {number}, "
                            f"index {index}), first on {first_seen[key]}; each (conversation_number, index) must be unique")
        first_seen[key] = row.where
        intent = None
        if is_missing(row.intent):
            empty_intent_rows.append(row)
        else:
            # Gold intents are the user's free strings: any non-empty text, stripped, kept as written.
            intent = str(row.intent).strip()
            intent_rows.append(row)
        synthetic = parse_flag(row.synthetic, source, row.where, "synthetic", row.kind)
        conversations.setdefault(number, []).append((row, Message(number, index, role, text, intent, synthetic)))
    if intent_rows and empty_intent_rows:
        row = empty_intent_rows[0]
        others = f"{len(intent_rows)} other message" + ("s have" if len(intent_rows) > 1 else " has")
        raise DataError(f"{source}: {row.where}, {row.kind} {row.columns[3]!r}: empty intent while {others} one; "
                        "give every message a gold intent or remove the intent column")
    result = []
    for number, entries in conversations.items():
        entries.sort(key=lambda e: e[1].index)
        for position, (row, message) in enumerate(entries):
            if message.index != position:
                expected = "does not start at index 0" if position == 0 else f"has no index {position}"
                raise DataError(f"{source}: {row.where}, {row.kind} {row.columns[1]!r}: conversation {number} {expected} "
                                f"(found index {message.index}); number the messages of each conversation 0, 1, 2, ... without gaps")
        result.append(Conversation(number, tuple(m for _, m in entries)))
    return Dataset(result, source)
