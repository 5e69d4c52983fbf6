"""The interface every classifier here shares, and saving / loading a trained one from a folder.

A classifier maps input texts to one label per field (`[{"intent": "late_checkout"}, ...]`). A saved
model folder holds `classifier.json` (method, schema with label sets, config, which rows were used for
training) plus the method's own files; `load_classifier(folder)` brings back the right class.
"""
from __future__ import annotations

import importlib
import json
import logging
from abc import ABC, abstractmethod
from dataclasses import asdict, fields as dc_fields
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from igft.classify.task import TaskSchema
from igft.errors import IgftError

logger = logging.getLogger(__name__)

METHODS = {
    "generative": "igft.classify.generative:GenerativeClassifier",
    "head": "igft.classify.head:HeadClassifier",
    "tfidf": "igft.classify.baselines:TfidfClassifier",
    "embeddings": "igft.classify.baselines:EmbeddingClassifier",
    "prompt": "igft.classify.baselines:PromptClassifier",
    "encoder": "igft.classify.encoder:EncoderClassifier",
}
MANIFEST = "classifier.json"
SPLIT_FILE = "split.csv"
FORMAT_VERSION = 1


class ClassifierError(IgftError):
    """A classifier cannot be built, trained or loaded as asked."""


class Classifier(ABC):
    """text -> {field: label}. Subclasses set `method` and a `Config` dataclass."""

    method: str = ""
    Config: type = object

    def __init__(self, schema: TaskSchema, config: Any = None):
        self.schema = schema
        self.config = config if config is not None else self.Config()

    @abstractmethod
    def fit(self, texts: Sequence[str], targets: Sequence[dict[str, str]],
            val_texts: Sequence[str] = (), val_targets: Sequence[dict[str, str]] = ()) -> dict:
        """Train; returns a small dict of training stats (steps, losses, ...)."""

    @abstractmethod
    def predict(self, texts: Sequence[str]) -> list[dict[str, str]]:
        """One {field: label} per text; every label is one of the field's allowed labels."""

    @abstractmethod
    def save_files(self, out_dir: Path) -> None:
        """Write the method's own files (weights, vectorizer, ...) into out_dir."""

    @classmethod
    @abstractmethod
    def load_files(cls, in_dir: Path, schema: TaskSchema, config: Any) -> "Classifier":
        """Rebuild a trained classifier from save_files' output."""


def config_from_dict(config_cls: type, data: dict) -> Any:
    """Build a config dataclass from a dict, naming unknown keys (a typo in --param must not pass silently)."""
    known = {f.name for f in dc_fields(config_cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ClassifierError(f"unknown option(s) {', '.join(unknown)} for {config_cls.__name__}; "
                              f"known: {', '.join(sorted(known))}")
    return config_cls(**data)


def classifier_class(method: str) -> type[Classifier]:
    if method not in METHODS:
        raise ClassifierError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    module_name, cls_name = METHODS[method].split(":")
    return getattr(importlib.import_module(module_name), cls_name)


def build_classifier(method: str, schema: TaskSchema, options: dict | None = None) -> Classifier:
    cls = classifier_class(method)
    return cls(schema, config_from_dict(cls.Config, options or {}))


def save_classifier(clf: Classifier, out_dir: str | Path, *, task_path: str = "", split: pd.Series | None = None,
                    split_from_column: bool = False, seed: int = 0, train_stats: dict | None = None) -> Path:
    """Write the model folder; `split` (row -> train/validation/test) is saved when it was made here."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clf.save_files(out)
    if split is not None and not split_from_column:
        pd.DataFrame({"row": range(len(split)), "split": list(split)}).to_csv(out / SPLIT_FILE, index=False)
    manifest = {
        "format_version": FORMAT_VERSION,
        "method": clf.method,
        "schema": clf.schema.to_dict(),
        "config": asdict(clf.config),
        "task_path": task_path,
        "split": "column" if split_from_column else ("seeded" if split is not None else "none"),
        "seed": seed,
        "train_stats": train_stats or {},
    }
    # the manifest goes last: a folder without it is an unfinished save, never mistaken for a model
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return out


def read_manifest(model_dir: str | Path) -> dict:
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        raise ClassifierError(f"{model_dir} is not a saved classifier (no {MANIFEST}); "
                              f"train one with: igft classify train --task CSV --method tfidf --out {model_dir}")
    return json.loads(path.read_text(encoding="utf-8"))


def load_classifier(model_dir: str | Path) -> Classifier:
    """Load a classifier saved by save_classifier."""
    manifest = read_manifest(model_dir)
    cls = classifier_class(manifest["method"])
    schema = TaskSchema.from_dict(manifest["schema"])
    config = config_from_dict(cls.Config, manifest.get("config", {}))
    return cls.load_files(Path(model_dir), schema, config)


def saved_split(model_dir: str | Path) -> pd.Series | None:
    """The seeded split saved with a model, if one was made when training."""
    path = Path(model_dir) / SPLIT_FILE
    if not path.is_file():
        return None
    return pd.read_csv(path)["split"].astype(str)
