"""The objective every backbone maximises: label r conversations of one split with an instruction, score.

The conversations are shuffled once with a seeded generator; a budget of r conversations is the first
r of that order, so a larger Hyperband rung always contains a smaller one (an r above the split's size
is capped, with a logged note). Scores are cached by (instruction, r): an instruction met again (a
resumed trial, a crossover child identical to a parent, a warm-start prompt) costs nothing. One
Objective per split (train, validation, test) keeps the splits' scores apart.
"""
from __future__ import annotations

import logging
import math
import random
import threading
from dataclasses import dataclass, replace
from typing import Any, Callable

from igft.data import Dataset
from igft.errors import IgftError
from igft.labeling import LabelingResult

logger = logging.getLogger(__name__)

LabelFn = Callable[[str, Dataset, Any], LabelingResult]
"""label_fn(instruction, dataset, lm) -> LabelingResult. `lm` is the metered LM of the trial."""

OBJECTIVE_KEYS_HELP = "AMI_x_NCA (default) or any numeric key of igft.metrics' report (AMI, NCA, ARI, purity, pairwise_F1, ...)"


class ObjectiveError(IgftError):
    """The objective cannot be computed (no gold intents, unknown report key, ...)."""


@dataclass
class Score:
    """What scoring an instruction yields; `report` is JSON-friendly (numbers + feedback material)."""

    objective: float
    report: dict[str, Any]
    labels: list[list]
    calls: int = 0
    tokens: int = 0


def gifa_label_fn(embedder, config=None) -> LabelFn:
    """label_fn running igft.gifa.label_dataset with the candidate instruction."""
    from igft.gifa import GifaConfig, label_dataset

    base = config if config is not None else GifaConfig()

    def label(instruction: str, dataset: Dataset, lm) -> LabelingResult:
        return label_dataset(dataset, lm, embedder, replace(base, instruction=instruction), progress=False)

    return label


def report_to_dict(report, n_feedback_intents: int = 15) -> dict[str, Any]:
    """Numbers of a ClusteringReport plus the feedback material (error examples, intent counts)."""
    data = {k: (float(v) if isinstance(v, float) else v) for k, v in report.to_dict().items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}
    data["error_examples"] = list(getattr(report, "error_examples", []) or [])
    for name in ("pred_counts", "gold_counts"):
        counts = getattr(report, name, None)
        if counts is not None:
            items = counts.items() if hasattr(counts, "items") else counts
            data[name] = dict(sorted(((str(k), int(v)) for k, v in items), key=lambda kv: (-kv[1], kv[0]))[:n_feedback_intents])
    return data


def metrics_report_fn(seed: int = 0, missing: str = "cluster") -> Callable[[Dataset, dict], dict]:
    """report_fn scoring with igft.metrics; `seed` drives the error-example sampling, `missing` is the
    missing-label policy (default: unlabeled messages form one cluster, so a failing prompt loses score)."""
    from igft.metrics import evaluate_labels

    def report(dataset: Dataset, labels: dict) -> dict[str, Any]:
        return report_to_dict(evaluate_labels(dataset, labels, seed=seed, missing=missing))

    return report


def default_report_fn(dataset: Dataset, labels: dict) -> dict[str, Any]:
    return metrics_report_fn()(dataset, labels)


class Objective:
    """Scores instructions on prefixes of one seeded order of the validation conversations."""

    def __init__(self, dataset: Dataset, label_fn: LabelFn, *, key: str = "AMI_x_NCA", seed: int = 0,
                 report_fn: Callable[[Dataset, dict], dict] = default_report_fn, name: str = "validation"):
        if not dataset.has_gold:
            raise ObjectiveError(f"{dataset.source}: the {name} data has no gold `intent` column; "
                                 "prompt search needs gold intents to score instructions")
        self.name = name
        self._capped_noted: set[int] = set()
        self.dataset = dataset
        self.label_fn = label_fn
        self.key = key
        self.report_fn = report_fn
        order = list(dataset.numbers)
        random.Random(seed).shuffle(order)
        self.order = order
        self._cache: dict[tuple[str, int], Score] = {}
        self._lock = threading.Lock()

    @property
    def max_r(self) -> int:
        return len(self.order)

    def subset(self, r: int) -> Dataset:
        """The first r conversations of the seeded order (kept in that order)."""
        if r < 1:
            raise ObjectiveError(f"need at least one {self.name} conversation, got r={r}")
        if r > self.max_r and r not in self._capped_noted:
            self._capped_noted.add(r)
            logger.info("r=%d is above the %d %s conversations; scoring on all %d", r, self.max_r, self.name, self.max_r)
        return self.dataset.subset(self.order[: min(r, self.max_r)])

    def cached(self, instruction: str, r: int) -> Score | None:
        with self._lock:
            return self._cache.get((instruction, min(r, self.max_r)))

    def remember(self, instruction: str, r: int, score: Score) -> None:
        with self._lock:
            self._cache.setdefault((instruction, min(r, self.max_r)), score)

    def score(self, instruction: str, r: int, lm) -> Score:
        """Label the first r conversations of this split with `instruction` using `lm`, and score them."""
        hit = self.cached(instruction, r)
        if hit is not None:
            return Score(hit.objective, hit.report, hit.labels, calls=0, tokens=0)
        subset = self.subset(r)
        result = self.label_fn(instruction, subset, lm)
        report = self.report_fn(subset, result.labels)
        if self.key not in report:
            numeric = sorted(k for k, v in report.items() if isinstance(v, (int, float)))
            raise ObjectiveError(f"objective key {self.key!r} is not in the report; choose one of {', '.join(numeric)}")
        value = float(report[self.key])
        labels = [[int(c), int(i), str(intent)] for (c, i), intent in sorted(result.labels.items())]
        score = Score(value if not math.isnan(value) else float("-inf"), report, labels)
        self.remember(instruction, r, score)
        return score
