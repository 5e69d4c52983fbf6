"""What every labeler (GIFA, embedding clustering, hybrid) returns, and how its outputs are written.

Keeping one result type and one writer means evaluation, the optimizers' reports, Stage 2 and the
notebooks take any labeler's output unchanged.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from igft.data import Dataset

CATALOG_COLUMNS = ["intent", "description", "examples", "count"]


@dataclass
class LabelingResult:
    """labels: (conversation_number, index) -> intent, for every labeled message.

    catalog: one row per intent with columns intent, description, examples (list of message texts), count.
    stats: run statistics (calls, live_calls, cached_calls, prompt_tokens, completion_tokens, retries,
    failures, seconds, ...). failures: one dict per conversation that could not be labeled
    ({"conversation_number": n, "reason": "..."}); its messages are absent from `labels`.
    """

    labels: dict[tuple[int, int], str]
    catalog: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CATALOG_COLUMNS))
    stats: dict = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)

    def labeled(self, dataset: Dataset) -> Dataset:
        """The dataset with predicted intents (messages of failed conversations get None)."""
        return dataset.with_intents(self.labels)


def write_outputs(result: LabelingResult, dataset: Dataset, out_dir: str | Path) -> dict[str, Path]:
    """Write labels.csv, catalog.csv, stats.json and (when the dataset has gold intents) report.json.

    labels.csv has the same layout as the input CSV (conversation_number, conversation, index, intent),
    so it is itself a valid input for Stage 2 and for `igft evaluate --pred`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"labels": out / "labels.csv", "catalog": out / "catalog.csv", "stats": out / "stats.json"}
    labeled = result.labeled(dataset).to_frame()
    labeled = labeled[labeled["intent"].notna()]
    labeled.to_csv(paths["labels"], index=False)
    catalog = result.catalog.copy()
    if "examples" in catalog.columns:
        catalog["examples"] = catalog["examples"].map(lambda v: json.dumps(list(v), ensure_ascii=False) if isinstance(v, (list, tuple)) else v)
    catalog.to_csv(paths["catalog"], index=False)
    stats = dict(result.stats, failures=len(result.failures), failed_conversations=result.failures)
    paths["stats"].write_text(json.dumps(stats, indent=2, default=str))
    if dataset.has_gold:
        from igft.metrics import evaluate_labels

        report = evaluate_labels(dataset, result.labels)
        paths["report"] = out / "report.json"
        paths["report"].write_text(json.dumps(report.to_dict(), indent=2))
    return paths
