"""CLINC150 (Larson et al., EMNLP 2019) as an igft classification task, out-of-scope queries kept apart.

`data_full.json` holds six lists of `[text, intent]` pairs: `train` / `val` / `test` (150 in-scope
intents: 100 / 20 / 30 queries each) and `oos_train` / `oos_val` / `oos_test` (out-of-scope queries,
intent `oos`). The in-scope rows become a single-field task (`intent`, 150 labels, a `split` column
train / validation / test); the out-of-scope texts stay in `oos[split]`, because the threshold
protocol never trains on them: a classifier answers one of the 150 intents and a query counts as
out-of-scope when its top probability falls below a threshold tuned on `oos_val` + `val`.
`oos_as_class=True` instead adds `oos` as a 151st label with the oos rows in their splits (the paper's
"oos-train" protocol).

The file is public (CC BY 3.0) but not shipped with igft: pass its path, or set IGFT_EXTERNAL_DATA to
the folder holding `clinc150/data_full.json`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from igft.classify.task import FieldSpec, Task, TaskError, TaskSchema, validate_task

OOS_LABEL = "oos"
# data_full.json's split names -> igft's split names
SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}
OOS_SPLITS = {"oos_train": "train", "oos_val": "validation", "oos_test": "test"}
INSTRUCTION = "Classify the user's request to a virtual assistant into one of its intents."


@dataclass
class Clinc150:
    """The in-scope task (split column) and the out-of-scope texts by igft split name."""

    task: Task
    oos: dict[str, list[str]] = field(default_factory=dict)

    def texts(self, split: str) -> list[str]:
        frame = self.task.frame
        return frame.loc[frame["split"] == split, "text"].tolist()

    def labels(self, split: str) -> list[str]:
        frame = self.task.frame
        return frame.loc[frame["split"] == split, "intent"].tolist()


def default_clinc150_path() -> Path:
    """$IGFT_EXTERNAL_DATA/clinc150/data_full.json, else ../shared/external beside the repository."""
    root = os.environ.get("IGFT_EXTERNAL_DATA")
    base = Path(root) if root else Path(__file__).resolve().parents[2].parent / "shared" / "external"
    return base / "clinc150" / "data_full.json"


def _pairs(data: dict, key: str, source: str) -> list[tuple[str, str]]:
    if key not in data:
        raise TaskError(f"{source}: no {key!r} list; expected CLINC150's data_full.json with "
                        f"{', '.join(list(SPLIT_NAMES) + list(OOS_SPLITS))}")
    pairs = []
    for i, item in enumerate(data[key]):
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            raise TaskError(f"{source}: {key}[{i}] is {item!r}, not a [text, intent] pair; use the original data_full.json")
        if not item[0].strip():
            raise TaskError(f"{source}: {key}[{i}] has an empty text; fix or drop that pair")
        pairs.append((item[0].strip(), item[1].strip()))
    return pairs


def load_clinc150(path: str | Path | None = None, *, oos_as_class: bool = False,
                  intents: int | None = None, per_intent: dict[str, int] | None = None,
                  oos_limit: dict[str, int] | None = None) -> Clinc150:
    """Read data_full.json into a Task (+ out-of-scope texts).

    `intents` keeps only the first N intents (sorted by name) and `per_intent` caps the rows per intent
    in a split (e.g. {"train": 20}); `oos_limit` caps the out-of-scope texts per split. The caps take
    the first rows in file order, so a reduced task is the same on every run (for quick CI runs).
    """
    path = Path(path) if path is not None else default_clinc150_path()
    if not path.is_file():
        raise TaskError(f"CLINC150 file {path} does not exist; download data_full.json from "
                        "github.com/clinc/oos-eval and pass its path (or set IGFT_EXTERNAL_DATA)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise TaskError(f"{path}: not valid JSON: {str(err).splitlines()[0]}") from err
    if not isinstance(data, dict):
        raise TaskError(f"{path}: expected a JSON object of split name -> [text, intent] pairs")
    source = str(path)
    rows = []
    for key, split in SPLIT_NAMES.items():
        for text, intent in _pairs(data, key, source):
            if intent == OOS_LABEL:
                raise TaskError(f"{source}: {key} holds an {OOS_LABEL!r} row; out-of-scope queries belong in oos_{key}")
            rows.append({"text": text, "intent": intent, "split": split})
    frame = pd.DataFrame(rows)
    labels = sorted(frame["intent"].unique())
    if intents is not None:
        labels = labels[:intents]
        frame = frame[frame["intent"].isin(labels)]
    if per_intent:
        frame = pd.concat([part.groupby("intent", sort=False).head(per_intent[split]) if split in per_intent else part
                           for split, part in frame.groupby("split", sort=False)])
    oos = {}
    for key, split in OOS_SPLITS.items():
        texts = [t for t, _ in _pairs(data, key, source)]
        oos[split] = texts[: (oos_limit or {}).get(split, len(texts))]
    if oos_as_class:
        extra = pd.DataFrame([{"text": t, "intent": OOS_LABEL, "split": s} for s, texts in oos.items() for t in texts])
        frame = pd.concat([frame, extra])
        labels = sorted(labels + [OOS_LABEL])
        oos = {}
    schema = TaskSchema(text_columns=["text"], fields=[FieldSpec(name="intent", labels=labels)],
                        name="clinc150", instruction=INSTRUCTION)
    return Clinc150(task=validate_task(frame.reset_index(drop=True), schema, source), oos=oos)
