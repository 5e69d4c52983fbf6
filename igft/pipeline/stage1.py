"""Stage 1 of the pipeline: label the conversations, score the labels, compare labelers.

Thin over igft.gifa.run (the same code path as `igft label`), so a dummy-mode replay from the demo
or a notebook sends exactly the requests that were recorded.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from igft.data import Dataset
from igft.gifa.run import LabelRun, LabelRunRequest, run_labeling
from igft.labeling import LabelingResult
from igft.pipeline.config import PipelineConfig

logger = logging.getLogger(__name__)


def cassette_for(cfg: PipelineConfig, name: str) -> str | None:
    """The cassette folder of one step: cfg.cassette_dir/<name>, or the bundled simulated_runs/<name>
    when no data of the user's is given; None in live mode without a cassette folder."""
    from igft.resources import simulated_runs_dir

    if cfg.cassette_dir:
        return str(Path(cfg.cassette_dir) / name)
    if cfg.data is None and cfg.mode != "live":
        return str(simulated_runs_dir() / name)
    return None


def run_stage1(cfg: PipelineConfig, out_dir: str | Path, progress: bool = True) -> LabelRun:
    """Label cfg.data (or the toy conversations) with the configured labeler; write its outputs to out_dir."""
    replaying_bundled = cfg.data is None and cfg.cassette_dir is None and cfg.mode == "replay"
    request = LabelRunRequest(
        out=str(out_dir), data=cfg.data, mode=cfg.mode, cassette=cassette_for(cfg, "gifa"),
        labeler=cfg.stage1.labeler,
        # A bundled replay takes every model and GIFA setting from the recording's run.json.
        llm=None if replaying_bundled else cfg.llm, embedder=None if replaying_bundled else cfg.embedder,
        gifa={} if replaying_bundled else {"method": cfg.stage1.method, "top_k": cfg.stage1.top_k, "seed": cfg.seed},
        progress=progress)
    return run_labeling(request)


def compare_labelers(dataset: Dataset, embedder, labeled: dict[str, LabelingResult] | None = None,
                     seed: int = 0, lm=None, *, hybrid_embedder=None, hybrid_options: dict | None = None,
                     hybrid_name: str | None = None, return_results: bool = False):
    """AMI, NCA, AMI x NCA, ARI, Hungarian ACC, coverage and intent counts of several labelers on one gold dataset.

    Rows, best offline first: the embedding labeler with automatic k (it never sees the gold count) and
    with the oracle k (the gold number of intents, KMeans); the hybrid labeler when an `lm` is given
    (embeddings propose clusters, the LLM names, splits and merges them; with `hybrid_embedder`, e.g.
    a replayed recording's vectors, and `hybrid_options`, HybridConfig/EmbeddingLabelerConfig keys);
    then `labeled`, results already computed (e.g. {"gifa (replay)": result}).
    Returns the table, or (table, {row name: LabelingResult}) with return_results.
    """
    from igft.discover import label_with
    from igft.metrics import evaluate_labels

    if not dataset.has_gold:
        raise ValueError(f"{dataset.source} has no gold intents to compare labelers against")
    rows, results = [], {}

    def add(name: str, result: LabelingResult, seconds: float | None) -> None:
        report = evaluate_labels(dataset, result.labels).to_dict()
        results[name] = result
        rows.append({"labeler": name, "AMI": report["AMI"], "NCA": report["NCA"], "AMI_x_NCA": report["AMI_x_NCA"],
                     "ARI": report["ARI"], "accuracy_hungarian": report["accuracy_hungarian"],
                     "coverage": len(result.labels) / max(dataset.n_messages, 1),
                     "n_intents": report["n_pred_intents"], "n_gold_intents": report["n_gold_intents"],
                     "seconds": seconds})

    n_gold = len({m.intent for m in dataset.messages})
    runs = [("embeddings (automatic k)", "embeddings", embedder, {}),
            (f"embeddings (oracle k={n_gold}, KMeans)", "embeddings", embedder, {"method": "kmeans", "n_clusters": n_gold})]
    if lm is not None:
        runs.append((hybrid_name or f"hybrid ({getattr(lm, 'model', 'LLM')})", "hybrid", hybrid_embedder or embedder,
                     dict(hybrid_options or {})))
    for name, labeler, emb, options in runs:
        start = time.perf_counter()
        result = label_with(labeler, dataset, embedder=emb, lm=lm, seed=seed, **options)
        add(name, result, round(time.perf_counter() - start, 2))
    for name, result in (labeled or {}).items():
        add(name, result, result.stats.get("seconds"))
    table = pd.DataFrame(rows)
    return (table, results) if return_results else table
