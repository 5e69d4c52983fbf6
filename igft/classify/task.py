"""Classification tasks: a CSV plus a small schema (text columns, label fields, label sets, descriptions).

A task is single-label (text -> intent), multi-field (text -> several named fields, each with its own
label set) or binary / imbalanced; all three are the same thing here: a list of fields, each with a
label set. With no schema, a CSV with a `text` column and an `intent` (or `label`) column is a
single-field task. Label sets not given in the schema are inferred from the CSV (sorted, so the label
order -- and with it every saved model -- is stable across runs).

Splits: a `split` column (train / validation / test) is honoured; otherwise a seeded split by row,
stratified on the first field, is made and saved with the model so `eval` scores the same test rows.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from igft.errors import IgftError

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
DEFAULT_TEXT_COLUMNS = ("text",)
DEFAULT_LABEL_COLUMNS = ("intent", "label")


class TaskError(IgftError):
    """A task CSV or schema is malformed."""


@dataclass
class FieldSpec:
    """One label field: its CSV column, its allowed labels, and optional one-line label descriptions."""

    name: str = field(metadata={"help": "CSV column holding this field's gold label"})
    labels: list[str] = field(default_factory=list, metadata={"help": "allowed labels (inferred when empty)"})
    descriptions: dict[str, str] = field(default_factory=dict, metadata={"help": "label -> one-line description"})


@dataclass
class TaskSchema:
    """What to read from a task CSV."""

    text_columns: list[str] = field(default_factory=lambda: list(DEFAULT_TEXT_COLUMNS),
                                    metadata={"help": "columns joined into the model input"})
    fields: list[FieldSpec] = field(default_factory=list, metadata={"help": "label fields, in output order"})
    name: str = field(default="task", metadata={"help": "task name shown in prompts and reports"})
    instruction: str = field(default="", metadata={"help": "optional task description for prompts"})
    split_column: str = field(default="split", metadata={"help": "column with train/validation/test, if present"})

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "schema") -> "TaskSchema":
        if not isinstance(data, dict):
            raise TaskError(f"{source}: the schema must be a JSON/YAML mapping with 'text_columns' and 'fields'")
        raw_fields = data.get("fields", data.get("label_fields"))
        if raw_fields is None:
            raise TaskError(f"{source}: no 'fields' given; add e.g. \"fields\": [\"intent\"] or a mapping name -> {{labels: [...]}}")
        fields: list[FieldSpec] = []
        if isinstance(raw_fields, dict):
            raw_fields = [{"name": k, **(v or {})} for k, v in raw_fields.items()]
        for item in raw_fields:
            if isinstance(item, str):
                fields.append(FieldSpec(name=item))
            elif isinstance(item, dict) and "name" in item:
                descriptions = item.get("descriptions") or {}
                labels = item.get("labels") or []
                if isinstance(labels, dict):  # {label: description}
                    descriptions = {**labels, **descriptions}
                    labels = list(labels)
                fields.append(FieldSpec(name=str(item["name"]), labels=[str(x) for x in labels],
                                        descriptions={str(k): str(v) for k, v in descriptions.items()}))
            else:
                raise TaskError(f"{source}: a field must be a name or a mapping with 'name'; got {item!r}")
        text_columns = data.get("text_columns", data.get("text_column", list(DEFAULT_TEXT_COLUMNS)))
        if isinstance(text_columns, str):
            text_columns = [text_columns]
        return cls(text_columns=[str(c) for c in text_columns], fields=fields, name=str(data.get("name", "task")),
                   instruction=str(data.get("instruction", "")), split_column=str(data.get("split_column", "split")))


def _read_schema_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise TaskError(f"cannot read schema {path}: {err.strerror}; pass an existing file with --schema") from err
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text)
        return json.loads(text)
    except Exception as err:  # json/yaml errors carry line numbers in their message
        raise TaskError(f"{path}: not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'}: "
                        f"{str(err).splitlines()[0]}") from err


def find_schema_file(csv_path: Path) -> Path | None:
    """`tickets.csv` pairs with `tickets.schema.json` / `.schema.yaml` beside it."""
    for suffix in (".schema.json", ".schema.yaml", ".schema.yml"):
        candidate = csv_path.with_name(csv_path.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


@dataclass
class Task:
    """A loaded task: the schema (with label sets filled in) and the validated frame."""

    schema: TaskSchema
    frame: pd.DataFrame
    path: str = ""

    @property
    def fields(self) -> list[FieldSpec]:
        return self.schema.fields

    @property
    def field_names(self) -> list[str]:
        return self.schema.field_names

    @property
    def has_split_column(self) -> bool:
        return self.schema.split_column in self.frame.columns

    def texts(self, frame: pd.DataFrame | None = None) -> list[str]:
        """Model inputs: one text column as is; several as `column: value` lines."""
        return input_texts(self.schema, self.frame if frame is None else frame)

    def targets(self, frame: pd.DataFrame | None = None) -> list[dict[str, str]]:
        frame = self.frame if frame is None else frame
        return [{name: str(row[name]) for name in self.field_names} for _, row in frame.iterrows()]

    def split(self, *, seed: int = 0, fractions: Sequence[float] = (0.7, 0.1, 0.2),
              assignment: pd.Series | None = None) -> dict[str, pd.DataFrame]:
        """train/validation/test frames: the split column, a given assignment, or a seeded stratified split."""
        if assignment is None:
            assignment = self.split_assignment(seed=seed, fractions=fractions)
        parts = {name: self.frame[assignment.values == name] for name in SPLITS}
        if parts["train"].empty:
            raise TaskError(f"{self.path or 'task'}: no training rows; mark some rows split=train or drop the split column")
        return parts

    def split_assignment(self, *, seed: int = 0, fractions: Sequence[float] = (0.7, 0.1, 0.2)) -> pd.Series:
        if self.has_split_column:
            return self.frame[self.schema.split_column].astype(str)
        return seeded_split(self.frame[self.field_names[0]].astype(str).tolist(), seed=seed, fractions=fractions)


def input_texts(schema: TaskSchema, frame: pd.DataFrame) -> list[str]:
    cols = schema.text_columns
    if len(cols) == 1:
        return frame[cols[0]].astype(str).tolist()
    return ["\n".join(f"{c}: {row[c]}" for c in cols) for _, row in frame.iterrows()]


def seeded_split(labels: Sequence[str], *, seed: int = 0, fractions: Sequence[float] = (0.7, 0.1, 0.2)) -> pd.Series:
    """Stratified split by row: within each label, shuffled rows go train / validation / test by fractions.

    Stratifying keeps every label in train (toy tasks have ~10 rows per label, where a plain random
    split would leave some labels out of training altogether).
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise TaskError(f"split fractions must be three non-negative numbers summing to 1; got {list(fractions)}")
    rng = np.random.default_rng(seed)
    out = np.empty(len(labels), dtype=object)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    for label in sorted(by_label):
        rows = np.array(by_label[label])
        rng.shuffle(rows)
        n = len(rows)
        n_test = int(round(n * fractions[2])) if n >= 3 else 0
        n_val = int(round(n * fractions[1])) if n - n_test >= 3 else 0
        n_test = min(n_test, n - 1)
        n_val = min(n_val, n - n_test - 1)
        out[rows[:n_test]] = "test"
        out[rows[n_test:n_test + n_val]] = "validation"
        out[rows[n_test + n_val:]] = "train"
    return pd.Series(out, name="split")


def load_task(csv_path: str | Path, schema: TaskSchema | dict | str | Path | None = None) -> Task:
    """Read and validate a task CSV; the schema is given, found beside the CSV, or the `text`+`intent` default."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise TaskError(f"task CSV {csv_path} does not exist; pass an existing file with --task")
    try:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except Exception as err:
        raise TaskError(f"{csv_path}: cannot parse CSV: {str(err).splitlines()[0]}") from err
    if isinstance(schema, (str, Path)):
        schema = TaskSchema.from_dict(_read_schema_file(Path(schema)), source=str(schema))
    elif isinstance(schema, dict):
        schema = TaskSchema.from_dict(schema)
    elif schema is None:
        found = find_schema_file(csv_path)
        if found is not None:
            schema = TaskSchema.from_dict(_read_schema_file(found), source=str(found))
        else:
            label_col = next((c for c in DEFAULT_LABEL_COLUMNS if c in frame.columns), None)
            if "text" not in frame.columns or label_col is None:
                raise TaskError(f"{csv_path}: no schema file ({csv_path.stem}.schema.json) and no 'text' + 'intent' columns "
                                f"(found: {', '.join(frame.columns)}); add those columns or pass --schema")
            schema = TaskSchema(text_columns=["text"], fields=[FieldSpec(name=label_col)], name=csv_path.stem)
    return validate_task(frame, schema, str(csv_path))


def validate_task(frame: pd.DataFrame, schema: TaskSchema, source: str = "task") -> Task:
    """Check columns and values; fill in inferred label sets. Errors name the file, row and column."""
    schema = TaskSchema.from_dict(schema.to_dict())  # a copy: label inference must not mutate the caller's schema
    if not schema.fields:
        raise TaskError(f"{source}: the schema has no label fields; add \"fields\": [\"intent\"]")
    needed = list(schema.text_columns) + schema.field_names
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise TaskError(f"{source}: missing column(s) {', '.join(missing)} (found: {', '.join(frame.columns)}); "
                        f"fix the CSV header or the schema")
    if frame.empty:
        raise TaskError(f"{source}: no rows; a task needs labelled examples")
    frame = frame.reset_index(drop=True).copy()
    for col in needed:
        values = frame[col].astype(str).str.strip()
        empty = values[(values == "") | (values.str.lower() == "nan")]
        if len(empty):
            raise TaskError(f"{source}: row {int(empty.index[0]) + 2}, column {col!r} is empty; fill it or drop the row")
        frame[col] = values
    for spec in schema.fields:
        if not spec.labels:
            spec.labels = sorted(frame[spec.name].unique().tolist())
            logger.info("%s: inferred %d labels for field %s", source, len(spec.labels), spec.name)
        allowed = set(spec.labels)
        bad = frame[~frame[spec.name].isin(allowed)]
        if len(bad):
            raise TaskError(f"{source}: row {int(bad.index[0]) + 2}, column {spec.name!r} has label "
                            f"{bad.iloc[0][spec.name]!r} not in the schema's labels; add it to the schema or fix the row")
        if len(spec.labels) < 2:
            raise TaskError(f"{source}: field {spec.name!r} has only {len(spec.labels)} label; a classifier needs at least 2")
        if any('"' in label or "\\" in label for label in spec.labels):
            raise TaskError(f"{source}: labels of field {spec.name!r} contain a quote or backslash; rename them")
    if schema.split_column in frame.columns:
        bad = frame[~frame[schema.split_column].isin(SPLITS)]
        if len(bad):
            raise TaskError(f"{source}: row {int(bad.index[0]) + 2}, column {schema.split_column!r} is "
                            f"{bad.iloc[0][schema.split_column]!r}; use train, validation or test")
    return Task(schema=schema, frame=frame, path=source)


def taxonomy_text(schema: TaskSchema) -> str:
    """The label sets (with descriptions) as prompt text: what the generative and prompt classifiers see."""
    lines = []
    for spec in schema.fields:
        lines.append(f"{spec.name}:")
        for label in spec.labels:
            desc = spec.descriptions.get(label, "")
            lines.append(f"- {label}" + (f": {desc}" if desc else ""))
    return "\n".join(lines)


def json_answer(target: dict[str, Any], field_names: Sequence[str]) -> str:
    """The canonical JSON answer, fields in schema order (the same string the generative model learns)."""
    return json.dumps({name: target[name] for name in field_names}, ensure_ascii=False)
