"""Train a classifier on a task CSV and save it; load a saved one and score it on the task's test rows.

These are what `igft classify train` / `igft classify eval` and the benchmark call.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pandas as pd

from igft.classify.base import (Classifier, ClassifierError, build_classifier, load_classifier, read_manifest,
                                save_classifier, saved_split)
from igft.classify.evaluate import evaluate_classifier
from igft.classify.task import Task, TaskSchema, find_schema_file, load_task
from igft.curate.marker import select_synthetic_rows

logger = logging.getLogger(__name__)


def train_classifier(task: Task, method: str, *, options: dict | None = None, seed: int = 0,
                     out_dir: str | Path | None = None, classifier: Classifier | None = None,
                     max_train: int | None = None) -> tuple[Classifier, dict]:
    """Split the task (its split column, else seeded), fit on the train rows, save to out_dir if given.

    `max_train` keeps the first N training rows (for quick CI-sized runs of the LLM classifiers).
    """
    assignment = task.split_assignment(seed=seed)
    parts = task.split(assignment=assignment)
    train = parts["train"] if max_train is None else parts["train"].head(max_train)
    clf = classifier or build_classifier(method, task.schema, options)
    stats = clf.fit(task.texts(train), task.targets(train), task.texts(parts["validation"]), task.targets(parts["validation"]))
    stats = {"n_train_rows": len(train), "n_validation_rows": len(parts["validation"]), "n_test_rows": len(parts["test"]), **stats}
    if out_dir is not None:
        save_classifier(clf, out_dir, task_path=task.path, split=assignment, split_from_column=task.has_split_column,
                        seed=seed, train_stats=stats)
    return clf, stats


def test_rows(task: Task, model_dir: str | Path | None = None, *, seed: int = 0) -> pd.DataFrame:
    """The rows to score: split column 'test', else the split saved with the model, else a seeded split."""
    if task.has_split_column:
        return task.frame[task.frame[task.schema.split_column] == "test"]
    assignment = saved_split(model_dir) if model_dir is not None else None
    if assignment is not None:
        if len(assignment) != len(task.frame):
            raise ClassifierError(f"the split saved with {model_dir} has {len(assignment)} rows but {task.path} has "
                                  f"{len(task.frame)}; evaluate on the CSV the model was trained on, or add a split column")
        return task.frame[assignment.values == "test"]
    return task.split(seed=seed)["test"]


def check_schema_matches(trained: TaskSchema, task: Task) -> None:
    """A model trained on other fields or labels cannot be scored on this task."""
    for spec in task.fields:
        known = next((f for f in trained.fields if f.name == spec.name), None)
        if known is None:
            raise ClassifierError(f"the model was trained without field {spec.name!r} (has: {', '.join(trained.field_names)}); "
                                  f"evaluate it on its own task CSV")
        unknown = sorted(set(spec.labels) - set(known.labels))
        if unknown:
            logger.warning("labels %s of field %s were never seen in training; they count as errors", unknown[:5], spec.name)


def evaluate_saved(model_dir: str | Path, task_csv: str | Path, *, schema: str | Path | dict | None = None,
                   out_dir: str | Path | None = None, latency_samples: int = 20, max_test: int | None = None,
                   synthetic: str = "include") -> dict:
    """Load a saved model and score it on the task's test rows (confusion PNGs and predictions in out_dir).

    `synthetic` (include | exclude | only) keeps the rows a model trained with that choice was split over."""
    manifest = read_manifest(model_dir)
    if schema is None and find_schema_file(Path(task_csv)) is None:
        # a CSV without its own schema: read it with the fields the model was trained on
        schema = TaskSchema.from_dict(manifest["schema"]).to_dict()
    task = load_task(task_csv, schema)
    if synthetic != "include":
        task = dataclasses.replace(task, frame=select_synthetic_rows(task.frame, synthetic, task.path))
    clf = load_classifier(model_dir)
    check_schema_matches(clf.schema, task)
    rows = test_rows(task, model_dir, seed=manifest.get("seed", 0))
    if max_test is not None:
        rows = rows.head(max_test)
    if rows.empty:
        raise ClassifierError(f"{task.path} has no test rows; add rows with split=test or drop the split column")
    result = evaluate_classifier(clf, task.texts(rows), task.targets(rows), out_dir=out_dir, latency_samples=latency_samples)
    if out_dir is not None:
        out = Path(out_dir)
        frame = rows.copy()
        for name in task.field_names:
            frame[f"pred_{name}"] = [p[name] for p in result["predictions"]]
        frame.to_csv(out / "predictions.csv", index=False)
        (out / "metrics.json").write_text(json.dumps({k: v for k, v in result.items() if k != "predictions"},
                                                     indent=2, ensure_ascii=False), encoding="utf-8")
    return result
