"""Parsing and validating conversation files into igft.data.Dataset (minimal first version)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from igft.data import REQUIRED_COLUMNS, Conversation, DataError, Dataset, Message, split_role


def dataset_from_frame(frame: pd.DataFrame, source: str) -> Dataset:
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column {missing[0]!r}; expected columns {list(REQUIRED_COLUMNS)} (+ optional 'intent')")
    has_intent = "intent" in frame.columns
    convs: dict[int, list[Message]] = {}
    for i, row in enumerate(frame.itertuples(index=False), start=2):
        parsed = split_role(row.conversation)
        if parsed is None:
            raise DataError(f"{source}: row {i}, column 'conversation': unknown role prefix; start the text with 'customer:' or 'assistant:'")
        role, text = parsed
        intent = getattr(row, "intent") if has_intent else None
        intent = None if intent is None or (isinstance(intent, float) and pd.isna(intent)) else str(intent)
        convs.setdefault(int(row.conversation_number), []).append(
            Message(int(row.conversation_number), int(getattr(row, "index")), role, text, intent))
    return Dataset([Conversation(n, tuple(sorted(ms, key=lambda m: m.index))) for n, ms in convs.items()], source)


def load_any(path: Path) -> Dataset:
    if path.suffix == ".jsonl":
        convs = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            number = int(record.get("conversation_number", len(convs)))
            msgs = []
            for pos, m in enumerate(record["messages"]):
                role = split_role(f"{m['role']}: x")
                if m["role"] == "system":
                    continue
                msgs.append(Message(number, len(msgs), role[0], m["content"], m.get("intent")))
            convs.append(Conversation(number, tuple(msgs)))
        return Dataset(convs, str(path))
    return dataset_from_frame(pd.read_csv(path), str(path))
