"""Writers: a Dataset (optionally with predicted labels) -> the paper's CSV layout or JSONL, atomically.

The `synthetic` column / field is written only when some message carries the marker, so files of
datasets without generated messages stay byte-compatible with the paper's toy CSV.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import pandas as pd

from igft.data.model import Dataset

CSV_COLUMNS = ("conversation_number", "conversation", "index", "intent")


def dataset_to_frame(dataset: Dataset) -> pd.DataFrame:
    """The paper's CSV layout: conversation_number, conversation, index, intent (+ synthetic when used)."""
    with_marker = dataset.has_synthetic
    columns = list(CSV_COLUMNS) + (["synthetic"] if with_marker else [])
    rows = []
    for m in dataset.messages:
        row = {"conversation_number": m.conversation_number, "conversation": m.line, "index": m.index, "intent": m.intent}
        if with_marker:
            row["synthetic"] = int(m.synthetic)
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def _jsonl_lines(dataset: Dataset):
    for c in dataset.conversations:
        msgs = [{"role": "user" if m.role == "customer" else "assistant", "content": m.text,
                 **({"intent": m.intent} if m.intent else {}), **({"synthetic": True} if m.synthetic else {})}
                for m in c.messages]
        yield json.dumps({"conversation_number": c.number, "messages": msgs}, ensure_ascii=False) + "\n"


def save_dataset(dataset: Dataset, path: str | Path) -> Path:
    """Write CSV (or JSONL when the path ends in .jsonl) through a temporary file, so a crash never
    leaves half a file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".jsonl":
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(_jsonl_lines(dataset))
    else:
        dataset_to_frame(dataset).to_csv(tmp, index=False)
    tmp.replace(path)
    return path


def save_labeled(dataset: Dataset, labels: Mapping[tuple[int, int], str], path: str | Path) -> Path:
    """Write `dataset` with the predicted `labels` as its intents (CSV, or JSONL for *.jsonl), atomically.

    Messages without a label get an empty intent; such a file loads again only without them (the
    loader refuses intents present in some rows only), so label every message or drop its conversation.
    """
    return save_dataset(dataset.with_intents(labels), path)
