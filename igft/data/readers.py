"""Readers: conversation CSV / JSONL files and DataFrames -> igft.data Dataset (validated).

Canonical CSV (the paper's toy format): columns `conversation_number`, `conversation` (the message
text with a `customer:` / `assistant:` prefix), `index` (position of the message inside its
conversation), optional `intent` (gold, any non-empty text) and optional `synthetic` (0/1, absent =
0). JSONL with OpenAI-style `messages` lists is accepted too (optional `intent` / `synthetic` per
message). Every problem raises DataError with one line naming the file, line and column.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd

from igft.data.model import REQUIRED_COLUMNS, ROLE_ALIASES, DataError, Dataset
from igft.data.validation import HEADER_HINT, RawRow, is_missing, parse_whole_number, short_repr, validate_rows

SYSTEM_ROLES = ("system", "developer")
OPTIONAL_COLUMNS = ("intent", "synthetic")


# --------------------------------------------------------------------------- CSV

def read_text(path: Path) -> str:
    """The file's text (UTF-8, BOM dropped); DataError naming the line and character of a bad byte."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; check the path") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a file; point at the .csv or .jsonl file") from None
    if not data.strip():
        raise DataError(f"{path}: line 1: the file is empty; a conversation CSV starts with the header {HEADER_HINT}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(f"{path}: line {line}, character {column}: byte 0x{data[exc.start]:02x} is not UTF-8; "
                        "re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`)") from None


def _csv_rows(text: str, source: str) -> list[RawRow]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        raise DataError(f"{source}: line 1: no header; the first line must be {HEADER_HINT}") from None
    header = [h.strip() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{source}: line 1, column {missing[0]!r}: missing from the header {','.join(header)[:80]!r}; "
                        f"the header must be {HEADER_HINT}")
    positions = {name: header.index(name) for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if name in header}
    rows: list[RawRow] = []
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
            rows.append(RawRow(where, get("conversation_number"), get("index"), get("conversation"), None, get("intent"),
                               synthetic=get("synthetic")))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{source}: line {reader.line_num}: unreadable CSV ({exc}); check the quoting") from None
    return rows


def load_csv(path: Path) -> Dataset:
    return validate_rows(_csv_rows(read_text(path), str(path)), str(path))


# --------------------------------------------------------------------------- JSONL

def _jsonl_rows(text: str, source: str) -> list[RawRow]:
    rows: list[RawRow] = []
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
        number = parse_whole_number(record.get("conversation_number", len(numbers_seen)), source, where,
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
            if is_missing(raw_role):
                raise DataError(f"{source}: {where}, field '{field}.role': missing; use 'user' or 'assistant'")
            if str(raw_role).strip().lower() in SYSTEM_ROLES:
                continue  # system prompts are not messages of the conversation
            role = ROLE_ALIASES.get(str(raw_role).strip().lower())
            if role is None:
                raise DataError(f"{source}: {where}, field '{field}.role': unknown role {short_repr(raw_role)}; "
                                "use user/customer or assistant/agent (system messages are skipped)")
            content = message.get("content")
            if content is not None and not isinstance(content, str):
                raise DataError(f"{source}: {where}, field '{field}.content': expected a string, got "
                                f"{type(content).__name__}; put the message text in 'content'")
            columns = ("conversation_number", f"{field}.position", f"{field}.content", f"{field}.intent")
            rows.append(RawRow(where, number, position, content, role, message.get("intent"), columns, "field",
                               message.get("synthetic")))
            position += 1
    return rows


def load_jsonl(path: Path) -> Dataset:
    return validate_rows(_jsonl_rows(read_text(path), str(path)), str(path),
                          'write one {"messages": [{"role": ..., "content": ...}, ...]} object per line')


# --------------------------------------------------------------------------- entry points

def dataset_from_frame(frame: pd.DataFrame, source: str) -> Dataset:
    """Validate a DataFrame in the CSV layout; rows are named by their 1-based position + 1 (as in a CSV)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: column {missing[0]!r} is missing; expected columns {HEADER_HINT}")
    rows = [RawRow(f"row {i + 2}", r["conversation_number"], r["index"], r["conversation"], None,
                   r.get("intent"), synthetic=r.get("synthetic"))
            for i, r in enumerate(frame.to_dict("records"))]
    return validate_rows(rows, source)


def load_any(path: Path) -> Dataset:
    """CSV, or JSONL when the name ends in .jsonl / .json."""
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".json"):
        return load_jsonl(path)
    return load_csv(path)


def load_conversations(path: str | Path) -> Dataset:
    """Load a conversation CSV or JSONL file; raise DataError (one clear line) on bad input."""
    return load_any(Path(path))
