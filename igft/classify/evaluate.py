"""Scoring classifiers: accuracy, macro / weighted F1, per-class report, per-field accuracy, all-fields
exact match, confusion-matrix PNGs, latency per example (p50 / p95) and throughput; one table across methods.

Headline figures for a multi-field task: `accuracy` is the all-fields exact match and `macro_f1` the
mean of the fields' macro F1 (for one field both are simply that field's figures).
Latency is measured on single-example calls (what a served classifier sees); throughput on batched
prediction over the whole test split. Both are wall-clock, so they are reported, never asserted.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from igft.classify.task import TaskSchema
from igft.figures import pyplot, save_figure

logger = logging.getLogger(__name__)


def score_predictions(schema: TaskSchema, gold: Sequence[dict[str, str]], pred: Sequence[dict[str, str]]) -> dict:
    """Quality figures only (no timing): headline accuracy / F1, per field, per class."""
    from sklearn.metrics import accuracy_score, classification_report, f1_score

    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold rows but {len(pred)} predictions")
    per_field, per_class = {}, {}
    for spec in schema.fields:
        y = [g[spec.name] for g in gold]
        p = [q[spec.name] for q in pred]
        per_field[spec.name] = {
            "accuracy": float(accuracy_score(y, p)),
            "macro_f1": float(f1_score(y, p, average="macro", zero_division=0)),
            "weighted_f1": float(f1_score(y, p, average="weighted", zero_division=0)),
        }
        per_class[spec.name] = classification_report(y, p, output_dict=True, zero_division=0)
    exact = float(np.mean([all(g[n] == q[n] for n in schema.field_names) for g, q in zip(gold, pred)])) if gold else 0.0
    return {
        "n": len(gold),
        "accuracy": exact,
        "macro_f1": float(np.mean([f["macro_f1"] for f in per_field.values()])),
        "weighted_f1": float(np.mean([f["weighted_f1"] for f in per_field.values()])),
        "exact_match": exact,
        "per_field": per_field,
        "per_class": per_class,
    }


def confusion_png(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Confusion matrix (rows gold, columns predicted) as a PNG; labels absent from both are dropped."""
    plt = pyplot()
    from sklearn.metrics import confusion_matrix

    used = [label for label in labels if label in set(gold) | set(pred)]
    matrix = confusion_matrix(gold, pred, labels=used)
    size = max(4.0, 0.35 * len(used) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(used)), used, rotation=90, fontsize=7)
    ax.set_yticks(range(len(used)), used, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title, fontsize=9)
    if len(used) <= 30:  # numbers stay legible up to about this many labels
        for i in range(len(used)):
            for j in range(len(used)):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    fig.tight_layout()
    return save_figure(fig, path)


def timed_predictions(clf: Any, texts: Sequence[str], *, latency_samples: int = 20) -> tuple[list[dict], dict]:
    """Batched predictions over all texts (throughput) and single-example calls on the first few (latency)."""
    start = time.perf_counter()
    pred = clf.predict(list(texts))
    batch_seconds = time.perf_counter() - start
    latencies = []
    for text in list(texts)[:latency_samples]:
        t0 = time.perf_counter()
        clf.predict([text])
        latencies.append(time.perf_counter() - t0)
    timing = {
        "latency_p50_ms": float(np.percentile(latencies, 50) * 1000) if latencies else float("nan"),
        "latency_p95_ms": float(np.percentile(latencies, 95) * 1000) if latencies else float("nan"),
        "examples_per_s": float(len(texts) / batch_seconds) if batch_seconds > 0 else float("inf"),
        "latency_samples": len(latencies),
    }
    return pred, timing


def evaluate_classifier(clf: Any, texts: Sequence[str], targets: Sequence[dict[str, str]], *,
                        out_dir: str | Path | None = None, latency_samples: int = 20, name: str | None = None) -> dict:
    """Predict, score, time; with out_dir also write confusion-matrix PNGs (one per field)."""
    pred, timing = timed_predictions(clf, texts, latency_samples=latency_samples)
    result = {"method": name or getattr(clf, "method", "?"), **score_predictions(clf.schema, targets, pred), **timing}
    if hasattr(clf, "unparsed"):  # prompt baseline: answers no parser could map to a label
        result["unparsed"] = int(clf.unparsed)
    if out_dir is not None:
        pngs = {}
        for spec in clf.schema.fields:
            pngs[spec.name] = str(confusion_png([t[spec.name] for t in targets], [p[spec.name] for p in pred], spec.labels,
                                                Path(out_dir) / f"confusion_{spec.name}.png",
                                                title=f"{result['method']}: {spec.name}"))
        result["confusion_png"] = pngs
    result["predictions"] = pred
    return result


def headline(result: dict) -> dict:
    """The `eval --json` payload: accuracy, macro_f1, per_field (+ weighted F1, exact match, timing)."""
    keys = ("n", "accuracy", "macro_f1", "weighted_f1", "exact_match", "per_field",
            "latency_p50_ms", "latency_p95_ms", "examples_per_s")
    out = {k: result[k] for k in keys if k in result}
    # strict JSON has no NaN: timing not measured (no latency samples) is null
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in out.items()}


def comparison_table(results: Sequence[dict]) -> str:
    """One plain-text table, a row per method: accuracy, macro F1, weighted F1, p50/p95 latency, examples/s."""
    header = ["method", "n", "accuracy", "macro_F1", "weighted_F1", "p50_ms", "p95_ms", "examples/s"]
    rows = [[str(r["method"]), str(r["n"]), f"{r['accuracy']:.3f}", f"{r['macro_f1']:.3f}", f"{r['weighted_f1']:.3f}",
             f"{r['latency_p50_ms']:.1f}", f"{r['latency_p95_ms']:.1f}", f"{r['examples_per_s']:.1f}"] for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])
