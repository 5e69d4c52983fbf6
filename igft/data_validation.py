"""Parsing and validating conversation files into igft.data.Dataset.

Every problem raises DataError with ONE line: the file, the line a user sees in an editor (1-based,
the header is line 1; for a multi-line quoted CSV field, the line where the record starts), the
column (CSV) or field (JSONL), what is wrong, and the fix. Nothing joins on text; a message's
identity is (conversation_number, index) and index must run 0, 1, 2, ... inside each conversation.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from igft.data import REQUIRED_COLUMNS, ROLE_ALIASES, Conversation, DataError, Dataset, Message, split_role

INTENT_PATTERN = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
SYSTEM_ROLES = ("system", "developer")
_HEADER_HINT = "conversation_number,conversation,index[,intent]"


@dataclass
class _Row:
    """One raw record and where it came from, before validation."""

    where: str                      # "line 7" (file) or "row 5" (DataFrame)
    conversation_number: Any
    index: Any
    text: Any                       # with role prefix (CSV) or without (JSONL)
    role: str | None                # JSONL gives it separately; None means: parse the prefix of text
    intent: Any
    columns: tuple[str, str, str, str] = ("conversation_number", "index", "conversation", "intent")
    kind: str = "column"            # how the error names a place: "column" (CSV) or "field" (JSONL)


def _short(value: Any, limit: int = 40) -> str:
    text = repr(str(value))
    return text if len(text) <= limit else text[:limit - 4] + "...'"


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _as_int(value: Any, source: str, where: str, column: str, what: str, kind: str = "column") -> int:
    """Whole numbers only ('3' and 3.0 are fine; '3a', 2.5, True are not)."""
    if _is_missing(value):
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
        raise DataError(f"{source}: {where}, {kind} {column!r}: {_short(value)} is not an integer; "
                        f"the {what} must be a whole number (0, 1, 2, ...)")
    return int(number)


def _validate_rows(rows: Iterable[_Row], source: str, empty_hint: str = "") -> Dataset:
    """Turn raw rows into a Dataset, checking every rule named in the module docstring."""
    rows = list(rows)
    if not rows:
        raise DataError(f"{source}: line 1: no messages in the file; "
                        f"{empty_hint or 'add one row per message under the header ' + _HEADER_HINT}")
    conversations: dict[int, list[tuple[_Row, Message]]] = {}
    first_seen: dict[tuple[int, int], str] = {}
    intent_rows: list[_Row] = []
    empty_intent_rows: list[_Row] = []
    for row in rows:
        c_conv, c_index, c_text, c_intent = row.columns
        place = f"{source}: {row.where}, {row.kind}"
        number = _as_int(row.conversation_number, source, row.where, c_conv, "conversation number", row.kind)
        index = _as_int(row.index, source, row.where, c_index, "message position (index)", row.kind)
        if index < 0:
            raise DataError(f"{place} {c_index!r}: negative index {index}; "
                            "number the messages of each conversation 0, 1, 2, ...")
        if _is_missing(row.text):
            raise DataError(f"{place} {c_text!r}: empty message; "
                            "give every row its text (drop the row if the message does not exist)")
        if row.role is None:
            parsed = split_role(str(row.text))
            if parsed is None:
                head = str(row.text).partition(":")[0].strip()
                found = f"unknown role prefix {_short(head + ':')}" if ":" in str(row.text) else "no role prefix"
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
        if _is_missing(row.intent):
            empty_intent_rows.append(row)
        else:
            intent = str(row.intent).strip()
            if not INTENT_PATTERN.match(intent):
                fix = re.sub(r"[^a-z0-9]+", "_", intent.lower()).strip("_") or "some_intent"
                raise DataError(f"{place} {c_intent!r}: intent {_short(intent)} is not snake_case; "
                                f"use lowercase words joined by underscores, e.g. {fix!r}")
            intent_rows.append(row)
        conversations.setdefault(number, []).append((row, Message(number, index, role, text, intent)))
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


# --------------------------------------------------------------------------- CSV

def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; check the path") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a file; point at the .csv or .jsonl file") from None
    if not data.strip():
        raise DataError(f"{path}: line 1: the file is empty; a conversation CSV starts with the header {_HEADER_HINT}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(f"{path}: line {line}, character {column}: byte 0x{data[exc.start]:02x} is not UTF-8; "
                        "re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`)") from None


def _csv_rows(text: str, source: str) -> list[_Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        raise DataError(f"{source}: line 1: no header; the first line must be {_HEADER_HINT}") from None
    header = [h.strip() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{source}: line 1, column {missing[0]!r}: missing from the header {','.join(header)[:80]!r}; "
                        f"the header must be {_HEADER_HINT}")
    positions = {name: header.index(name) for name in (*REQUIRED_COLUMNS, "intent") if name in header}
    rows: list[_Row] = []
    start = reader.line_num + 1
    try:
        for record in reader:
            where = f"line {start}"
            if not record or all(not cell.strip() for cell in record):
                start = reader.line_num + 1
                continue  # blank lines are harmless
            if len(record) != len(header):
                raise DataError(f"{source}: {where}: {len(record)} fields but the header has {len(header)}; "
                                "quote texts that contain commas (\"...\") and check for missing cells")
            get = lambda name: record[positions[name]] if name in positions else None  # noqa: E731
            rows.append(_Row(where, get("conversation_number"), get("index"), get("conversation"), None, get("intent")))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{source}: line {reader.line_num}: unreadable CSV ({exc}); check the quoting") from None
    return rows


def load_csv(path: Path) -> Dataset:
    return _validate_rows(_csv_rows(_decode(path), str(path)), str(path))


# --------------------------------------------------------------------------- JSONL

def _jsonl_rows(text: str, source: str) -> list[_Row]:
    rows: list[_Row] = []
    numbers_seen: dict[int, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}: {where}, character {exc.colno}: not valid JSON ({exc.msg}); "
                            "write one JSON object per line") from None
        if not isinstance(record, dict):
            raise DataError(f"{source}: {where}: a JSON {type(record).__name__}, not an object; "
                            'write one {"messages": [...]} object per line')
        if "messages" not in record:
            raise DataError(f"{source}: {where}, field 'messages': missing; each line needs "
                            '{"messages": [{"role": "user", "content": "..."}, ...]}')
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            raise DataError(f"{source}: {where}, field 'messages': expected a non-empty list of "
                            '{"role": ..., "content": ...} objects')
        number = _as_int(record.get("conversation_number", len(numbers_seen)), source, where,
                         "conversation_number", "conversation number", "field")
        if number in numbers_seen:
            raise DataError(f"{source}: {where}, field 'conversation_number': duplicate conversation {number}, "
                            f"first on line {numbers_seen[number]}; give each conversation its own number")
        numbers_seen[number] = lineno
        position = 0
        for k, message in enumerate(messages):
            field = f"messages[{k}]"
            if not isinstance(message, dict):
                raise DataError(f"{source}: {where}, field {field!r}: expected an object with 'role' and 'content'")
            raw_role = message.get("role")
            if _is_missing(raw_role):
                raise DataError(f"{source}: {where}, field '{field}.role': missing; use 'user' or 'assistant'")
            if str(raw_role).strip().lower() in SYSTEM_ROLES:
                continue  # system prompts are not messages of the conversation
            role = ROLE_ALIASES.get(str(raw_role).strip().lower())
            if role is None:
                raise DataError(f"{source}: {where}, field '{field}.role': unknown role {_short(raw_role)}; "
                                "use user/customer or assistant/agent (system messages are skipped)")
            content = message.get("content")
            if content is not None and not isinstance(content, str):
                raise DataError(f"{source}: {where}, field '{field}.content': expected a string, got "
                                f"{type(content).__name__}; put the message text in 'content'")
            columns = ("conversation_number", f"{field}.position", f"{field}.content", f"{field}.intent")
            rows.append(_Row(where, number, position, content, role, message.get("intent"), columns, "field"))
            position += 1
    return rows


def load_jsonl(path: Path) -> Dataset:
    return _validate_rows(_jsonl_rows(_decode(path), str(path)), str(path),
                          'write one {"messages": [{"role": ..., "content": ...}, ...]} object per line')


# --------------------------------------------------------------------------- entry points

def dataset_from_frame(frame: pd.DataFrame, source: str) -> Dataset:
    """Validate a DataFrame in the CSV layout; rows are named by their 1-based position + 1 (as in a CSV)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: column {missing[0]!r} is missing; expected columns {_HEADER_HINT}")
    has_intent = "intent" in frame.columns
    rows = [_Row(f"row {i + 2}", r["conversation_number"], r["index"], r["conversation"], None,
                 r["intent"] if has_intent else None)
            for i, r in enumerate(frame.to_dict("records"))]
    return _validate_rows(rows, source)


def load_any(path: Path) -> Dataset:
    """CSV, or JSONL when the name ends in .jsonl / .json."""
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".json"):
        return load_jsonl(path)
    return load_csv(path)
