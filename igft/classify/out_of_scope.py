"""Out-of-scope detection by a threshold on a classifier's top probability (CLINC150's threshold protocol).

A classifier trained on the in-scope intents only answers `oos` for a query whose highest class
probability is below a threshold. The threshold is tuned on validation data (in-scope `val` plus
out-of-scope `oos_val`) to maximise the mean of in-scope accuracy (a rejected in-scope query counts as
wrong) and out-of-scope recall, then applied unchanged to the test data. Classifiers that expose no
probabilities (`predict_proba`) get no threshold: their out-of-scope recall is reported as not measured.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def has_probabilities(clf: Any) -> bool:
    return callable(getattr(clf, "predict_proba", None))


def top_predictions(clf: Any, texts: Sequence[str], field: str) -> tuple[list[str], np.ndarray]:
    """(argmax label, its probability) per text for one field."""
    labels = next(spec.labels for spec in clf.schema.fields if spec.name == field)
    probs = clf.predict_proba(list(texts))[field]
    best = np.argmax(probs, axis=1)
    return [labels[i] for i in best], probs[np.arange(len(best)), best]


def threshold_scores(threshold: float, in_top: np.ndarray, in_correct: np.ndarray, oos_top: np.ndarray) -> dict[str, float]:
    """In-scope accuracy with rejection, out-of-scope recall, and their mean, at one threshold."""
    accepted = in_top >= threshold
    in_acc = float(np.mean(in_correct & accepted)) if len(in_top) else 0.0
    oos_recall = float(np.mean(oos_top < threshold)) if len(oos_top) else 0.0
    return {"threshold": float(threshold), "in_scope_accuracy": in_acc, "oos_recall": oos_recall,
            "balanced": (in_acc + oos_recall) / 2}


def tune_threshold(in_top: np.ndarray, in_correct: np.ndarray, oos_top: np.ndarray) -> dict[str, float]:
    """The threshold (among the observed probabilities, plus 0) with the best validation mean of the two."""
    candidates = np.unique(np.concatenate([[0.0], in_top, oos_top, oos_top + 1e-9]))
    best = max((threshold_scores(t, in_top, in_correct, oos_top) for t in candidates),
               key=lambda s: (s["balanced"], -s["threshold"]))
    return best
