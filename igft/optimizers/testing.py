"""Deterministic stand-ins for GIFA and the metrics, for tests and dry runs of the search machinery.

`keyword_label_fn` labels a message with its gold intent with a probability that grows with how often
the instruction says "precise": a search that learns to add the word climbs, so control flow can be
tested without a model. `simple_report` computes AMI, NCA and AMI x NCA with scikit-learn only.
"""
from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np

from igft.data import Dataset
from igft.labeling import LabelingResult


def instruction_quality(instruction: str) -> float:
    """0.2 + 0.2 per occurrence of "precise", capped at 1."""
    return min(1.0, 0.2 + 0.2 * instruction.lower().count("precise"))


def keyword_label_fn(instruction: str, dataset: Dataset, lm=None) -> LabelingResult:
    quality = instruction_quality(instruction)
    labels = {}
    for message in dataset.messages:
        digest = int(hashlib.sha256(f"{instruction}|{message.key}".encode()).hexdigest()[:8], 16)
        if (digest % 1000) / 1000 < quality:
            labels[message.key] = message.intent
        else:
            labels[message.key] = f"other_{digest % 3}"
    return LabelingResult(labels=labels, stats={"calls": 0})


def simple_report(dataset: Dataset, labels: dict) -> dict:
    """AMI, NCA, AMI_x_NCA and a few error examples (a stand-in for igft.metrics in tests)."""
    messages = dataset.messages
    report = simple_report_lists([m.intent for m in messages], [labels.get(m.key, f"__missing_{m.key}") for m in messages])
    report["error_examples"] = [{"kind": "false_merge", "a": a.text, "b": b.text} for a, b in zip(messages, messages[1:])
                                if labels.get(a.key) == labels.get(b.key) and a.intent != b.intent][:4]
    return report


def simple_report_lists(gold: list, pred: list) -> dict:
    """AMI, NCA (DESIGN.md's definition) and AMI_x_NCA of two aligned label lists."""
    from sklearn.metrics import adjusted_mutual_info_score

    ami = float(adjusted_mutual_info_score(gold, pred))
    k = len(set(gold))
    by_cluster: dict[str, Counter] = {}
    for g, p in zip(gold, pred):
        by_cluster.setdefault(p, Counter())[g] += 1
    mean_purity = float(np.mean([max(c.values()) / sum(c.values()) for c in by_cluster.values()]))
    nca = (mean_purity - 1 / k) / (1 - 1 / k) if k > 1 else 0.0
    return {"AMI": ami, "NCA": nca, "AMI_x_NCA": ami * nca, "n_messages": len(gold),
            "pred_counts": dict(Counter(pred).most_common(5)), "gold_counts": dict(Counter(gold).most_common(5))}
