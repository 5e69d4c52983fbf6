"""A retrieval shortlist of candidate labels: the N labels whose embedding centroid is nearest a text.

A prompt that lists a 150-intent taxonomy is ~1,500 tokens per query, too slow for a small LLM on CPU.
Listing only the N labels nearest the query (cosine to the mean embedding of each label's training
texts, bundled MiniLM by default) keeps the prompt short. It is a different method from the full
prompt: the LLM can only be right when the gold label is in the shortlist, so the shortlist's recall
(`recall`) is the ceiling of its accuracy and is reported beside it.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Sequence

import numpy as np

logger = logging.getLogger(__name__)


class LabelShortlist:
    """Label centroids of training-text embeddings; `top(texts, n)` ranks labels by cosine to each text."""

    def __init__(self, embedder: Any, labels: Sequence[str]):
        self.embedder = embedder
        self.labels = list(labels)
        self.centroids: np.ndarray | None = None

    def fit(self, texts: Sequence[str], labels: Sequence[str], per_label: int = 0) -> "LabelShortlist":
        """Centroids from at most `per_label` texts per label (0 = all); a label without texts embeds its name."""
        chosen: dict[str, list[str]] = defaultdict(list)
        for text, label in zip(texts, labels):
            if per_label <= 0 or len(chosen[label]) < per_label:
                chosen[label].append(text)
        rows, owners = [], []
        for label in self.labels:
            examples = chosen.get(label) or [label.replace("_", " ")]
            rows += examples
            owners += [label] * len(examples)
        vectors = _unit(self.embedder.embed(rows))
        owners_arr = np.array(owners)
        self.centroids = _unit(np.stack([vectors[owners_arr == label].mean(axis=0) for label in self.labels]))
        logger.info("shortlist centroids from %d texts over %d labels", len(rows), len(self.labels))
        return self

    def top(self, texts: Sequence[str], n: int) -> list[list[str]]:
        """The n nearest labels per text, nearest first."""
        if self.centroids is None:
            raise RuntimeError("fit the shortlist first")
        sims = _unit(self.embedder.embed(list(texts))) @ self.centroids.T
        order = np.argsort(-sims, axis=1)[:, :n]
        return [[self.labels[j] for j in row] for row in order]

    def recall(self, texts: Sequence[str], gold: Sequence[str], n: int) -> float:
        """Share of texts whose gold label is in their shortlist (the shortlisted method's accuracy ceiling)."""
        hits = [g in short for g, short in zip(gold, self.top(texts, n))]
        return float(np.mean(hits)) if hits else 0.0


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
