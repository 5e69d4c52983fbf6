"""Embedding-based intent discovery and the hybrid (embeddings + LLM naming) labeler.

Both return `igft.labeling.LabelingResult`, the same outputs as GIFA, so evaluation, the optimizers'
reports and Stage 2 take their labels unchanged. `igft label --labeler embeddings|hybrid` calls
`label_with`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from igft.data import Dataset
from igft.discover.embedding import DiscoveryConfigError, EmbeddingLabelerConfig, label_embeddings
from igft.discover.hybrid import HybridConfig, label_hybrid
from igft.labeling import LabelingResult

LABELERS = ("embeddings", "hybrid")

__all__ = ["LABELERS", "DiscoveryConfigError", "EmbeddingLabelerConfig", "HybridConfig", "label_with",
           "label_embeddings", "label_hybrid", "make_config"]


def _resolve(spec: Any, kind: str) -> Any:
    """Accept an object or a spec string (built through igft.llm.factory, default mode live)."""
    if not isinstance(spec, str):
        return spec
    from igft.llm import factory

    return factory.build_embedder(spec, mode="live") if kind == "embedder" else factory.build_lm(spec, mode="live")


def _coerce(value: Any, target: Any) -> Any:
    # Options from the CLI arrive as strings ("n_clusters=50"); turn them into the field's type.
    if not isinstance(value, str) or isinstance(target, str):
        return value
    low = value.strip().lower()
    if low in ("none", "null", "auto", ""):
        return None
    if isinstance(target, bool) or low in ("true", "false"):
        return low in ("true", "1", "yes")
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def make_config(name: str, **options: Any) -> EmbeddingLabelerConfig | HybridConfig:
    """The labeler's config from keyword options; embedding options are accepted by the hybrid too."""
    emb_fields = {f.name: f for f in dataclasses.fields(EmbeddingLabelerConfig)}
    hyb_fields = {f.name: f for f in dataclasses.fields(HybridConfig) if f.name != "embedding"}
    emb_opts, hyb_opts = {}, {}
    for key, value in options.items():
        if key in emb_fields:
            emb_opts[key] = _coerce(value, emb_fields[key].default)
        elif name == "hybrid" and key in hyb_fields:
            hyb_opts[key] = _coerce(value, hyb_fields[key].default)
        else:
            allowed = sorted(emb_fields) + (sorted(hyb_fields) if name == "hybrid" else [])
            raise DiscoveryConfigError(f"unknown option {key!r} for the {name} labeler; known options: {', '.join(allowed)}")
    if "threshold_grid" in emb_opts and isinstance(emb_opts["threshold_grid"], str):
        emb_opts["threshold_grid"] = tuple(float(x) for x in emb_opts["threshold_grid"].split(","))
    embedding = EmbeddingLabelerConfig(**emb_opts)
    config = embedding if name == "embeddings" else HybridConfig(embedding=embedding, **hyb_opts)
    config.validate()
    return config


def label_with(name: str, dataset: Dataset, *, embedder: Any, lm: Any = None, seed: int = 0,
               progress: bool = False, **options: Any) -> LabelingResult:
    """Label `dataset` with the `embeddings` or `hybrid` labeler.

    embedder: an `Embedder` or a spec such as "local:minilm"; lm: an `LM` or spec (hybrid only).
    options: fields of EmbeddingLabelerConfig (method, n_clusters, threshold, context, ...) and, for
    the hybrid, of HybridConfig (n_shown, allow_split, allow_merge, merge_similarity, ...).
    stats include calls, seconds and n_intents.
    """
    if name not in LABELERS:
        raise DiscoveryConfigError(f"unknown labeler {name!r}; use one of {', '.join(LABELERS)} (or gifa via igft label)")
    if not dataset.n_messages:
        raise DiscoveryConfigError(f"{dataset.source} has no messages to label; check the input file")
    config = make_config(name, **options)
    emb = _resolve(embedder, "embedder")
    if name == "embeddings":
        return label_embeddings(dataset, emb, config, seed=seed, progress=progress)
    if lm is None:
        raise DiscoveryConfigError("the hybrid labeler needs an LLM; pass --lm SPEC (e.g. local:smollm2 or openai:gpt-4o)")
    return label_hybrid(dataset, emb, _resolve(lm, "lm"), config, seed=seed, progress=progress)
