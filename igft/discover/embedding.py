"""The embedding labeler: embed every message, cluster the vectors, name each cluster with TF-IDF keywords.

This is the BERTopic-style baseline users weigh GIFA against. It needs no LLM: the bundled
all-MiniLM-L6-v2 embedder (or any `Embedder`) and scikit-learn/scipy do the work.
How the defaults were chosen is written in `EmbeddingLabelerConfig` and in benchmarks/labelers.py.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from igft.data import Dataset, Message
from igft.discover import clustering
from igft.discover.naming import ctfidf_keywords, representatives, unique_names
from igft.errors import IgftError
from igft.labeling import CATALOG_COLUMNS, LabelingResult
from igft.llm.base import Embedder

logger = logging.getLogger(__name__)

METHODS = ("agglomerative", "kmeans", "hdbscan")
# agglomerative and HDBSCAN hold an n x n float64 distance matrix (plus scipy's condensed copy):
# 12,000 messages is about 1.7 GB. Above that, fail early with the way out rather than swap.
MAX_PAIRWISE_MESSAGES = 12_000
CONTEXTS = ("none", "role", "previous", "role+previous")


class DiscoveryConfigError(IgftError, ValueError):
    """An invalid option of the embedding or hybrid labeler."""


@dataclass
class EmbeddingLabelerConfig:
    """Options of the embedding labeler.

    The defaults (context role+previous, split_roles, criterion auto, quantile 0.7) are the best mean
    AMI x NCA over igft's OWN data -- the bundled toy CSV and three igft.synthetic sets -- in the grid
    printed by `python benchmarks/labelers.py --sweep`; the paper's data played no part in choosing them.
    """

    method: str = field(default="agglomerative", metadata={
        "help": "clustering: agglomerative (average linkage, cosine), kmeans (needs n_clusters) or hdbscan"})
    n_clusters: int | None = field(default=None, metadata={
        "help": "number of intents; required for kmeans, optional for agglomerative (overrides the threshold)"})
    threshold: float | None = field(default=None, metadata={
        "help": "agglomerative cosine-distance cut; None finds it without gold labels (see criterion)"})
    criterion: str = field(default="auto", metadata={
        "help": "how the threshold is found without gold labels: silhouette (best mean silhouette over "
                "threshold_grid), neighbors (a quantile of nearest-neighbour distances) or auto (silhouette when "
                "its best score is >= min_structure, i.e. the data has clearly separated groups, else neighbors)"})
    quantile: float = field(default=0.7, metadata={
        "help": "for neighbors: which quantile of nearest-neighbour distances becomes the threshold"})
    min_structure: float = field(default=0.25, metadata={
        "help": "for auto: the best silhouette needed to trust it (0.25 = Kaufman & Rousseeuw's 'substantial structure')"})
    threshold_grid: tuple[float, ...] = field(default=clustering.DEFAULT_THRESHOLD_GRID, metadata={
        "help": "thresholds scored by the silhouette search (scores are kept in stats)"})
    context: str = field(default="role+previous", metadata={
        "help": "what is embedded besides the text: none, role (the 'customer: ' prefix), previous (mix in the "
                "previous message's vector) or role+previous"})
    previous_weight: float = field(default=0.3, metadata={
        "help": "weight of the previous message's vector when context includes 'previous'"})
    split_roles: bool = field(default=True, metadata={
        "help": "never put a customer and an assistant message into the same intent"})
    min_cluster_size: int = field(default=2, metadata={"help": "HDBSCAN's smallest cluster (noise -> singletons)"})
    n_representatives: int = field(default=3, metadata={
        "help": "messages closest to each cluster centroid kept as the catalog's examples"})
    name_words: int = field(default=3, metadata={"help": "TF-IDF keywords per intent name"})
    batch_size: int = field(default=256, metadata={"help": "texts per embedder call"})

    def validate(self) -> None:
        if self.method not in METHODS:
            raise DiscoveryConfigError(f"unknown clustering method {self.method!r}; use one of {', '.join(METHODS)}")
        if self.context not in CONTEXTS:
            raise DiscoveryConfigError(f"unknown context {self.context!r}; use one of {', '.join(CONTEXTS)}")
        if self.method == "kmeans" and not self.n_clusters:
            raise DiscoveryConfigError("method kmeans needs n_clusters (e.g. --option n_clusters=50); "
                                       "or use method agglomerative/hdbscan to choose it automatically")
        if self.n_clusters is not None and self.n_clusters < 1:
            raise DiscoveryConfigError(f"n_clusters must be at least 1, got {self.n_clusters}")
        if self.criterion not in clustering.CRITERIA:
            raise DiscoveryConfigError(f"unknown criterion {self.criterion!r}; use one of {', '.join(clustering.CRITERIA)}")
        if not 0.0 < self.quantile < 1.0:
            raise DiscoveryConfigError(f"quantile must be between 0 and 1, got {self.quantile}")
        if self.threshold is not None and not 0.0 < self.threshold <= 2.0:
            raise DiscoveryConfigError(f"threshold is a cosine distance in (0, 2], got {self.threshold}")


@dataclass
class Clustering:
    """Messages, their vectors and cluster ids: what the hybrid labeler starts from."""

    messages: list[Message]
    vectors: np.ndarray
    cluster_ids: np.ndarray
    info: dict = field(default_factory=dict)

    def members(self) -> list[np.ndarray]:
        """Row indices of each cluster, cluster 0 first."""
        k = int(self.cluster_ids.max()) + 1 if len(self.cluster_ids) else 0
        return [np.flatnonzero(self.cluster_ids == c) for c in range(k)]


def embed_messages(messages: Sequence[Message], embedder: Embedder, *, context: str = "none",
                   previous_weight: float = 0.3, batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """L2-normalised vectors of the messages, with the chosen context mixed in."""
    texts = [m.line if context in ("role", "role+previous") else m.text for m in messages]
    chunks = []
    for start in tqdm(range(0, len(texts), batch_size), desc="embedding", disable=not progress):
        chunks.append(np.asarray(embedder.embed(texts[start:start + batch_size]), dtype=np.float64))
    vectors = np.vstack(chunks) if chunks else np.zeros((0, 1))
    vectors = _normalise(vectors)
    if context in ("previous", "role+previous") and len(messages):
        # A reply's meaning depends on what it answers ("yes, please" after an offer): add the
        # previous message's vector, damped, within the same conversation only.
        mixed = vectors.copy()
        for i in range(1, len(messages)):
            if messages[i].conversation_number == messages[i - 1].conversation_number:
                mixed[i] = vectors[i] + previous_weight * vectors[i - 1]
        vectors = _normalise(mixed)
    return vectors


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def cluster_vectors(vectors: np.ndarray, roles: Sequence[str], config: EmbeddingLabelerConfig,
                    seed: int = 0) -> tuple[np.ndarray, dict]:
    """Cluster ids for the vectors, plus what was chosen (threshold, search scores)."""
    config.validate()
    n = len(vectors)
    role_list = list(roles) if config.split_roles else None
    info: dict = {"method": config.method}
    if n == 0:
        return np.zeros(0, dtype=int), info
    if config.method == "kmeans":
        return clustering.kmeans(vectors, config.n_clusters, seed=seed, roles=role_list), info
    if n > MAX_PAIRWISE_MESSAGES:
        gigabytes = 1.5 * 8 * n * n / 1e9
        raise DiscoveryConfigError(
            f"{config.method} clustering of {n} messages needs a {n}x{n} distance matrix (~{gigabytes:.0f} GB); "
            f"use --option method=kmeans --option n_clusters=K, or label at most {MAX_PAIRWISE_MESSAGES} messages "
            "(e.g. --max-conversations)")
    dist = clustering.cosine_distance_matrix(vectors, role_list)
    if config.method == "hdbscan":
        return clustering.hdbscan(dist, min_cluster_size=config.min_cluster_size), info
    tree = clustering.average_linkage(dist)
    if config.n_clusters is not None:
        info["n_clusters_given"] = config.n_clusters
        return clustering.cut_tree(tree, n, n_clusters=config.n_clusters), info
    threshold = config.threshold
    if threshold is None:
        # The threshold is calibrated within roles even when the final clustering may mix them: with
        # the role prefix embedded, "customer vs assistant" is itself a strong two-group structure
        # that a silhouette would otherwise take for the intents.
        if role_list is None:
            search_dist = clustering.cosine_distance_matrix(vectors, list(roles))
            search_tree = clustering.average_linkage(search_dist)
        else:
            search_dist, search_tree = dist, tree
        search = clustering.search_threshold(search_dist, search_tree, config.threshold_grid,
                                             plain_dist=clustering.cosine_distance_matrix(vectors),
                                             criterion=config.criterion, quantile=config.quantile,
                                             min_structure=config.min_structure, seed=seed)
        threshold = search.threshold
        info["threshold_search"] = {"criterion": search.criterion, "best_silhouette": search.best_silhouette,
                                    "scores": {str(k): round(v, 4) for k, v in search.scores.items()},
                                    "n_clusters": {str(k): v for k, v in search.n_clusters.items()}}
    info["threshold"] = threshold
    return clustering.cut_tree(tree, n, threshold=threshold), info


def cluster_dataset(dataset: Dataset, embedder: Embedder, config: EmbeddingLabelerConfig | None = None,
                    seed: int = 0, progress: bool = False) -> Clustering:
    """Embed and cluster every message of the dataset."""
    config = config or EmbeddingLabelerConfig()
    config.validate()
    messages = dataset.messages
    vectors = embed_messages(messages, embedder, context=config.context, previous_weight=config.previous_weight,
                             batch_size=config.batch_size, progress=progress)
    ids, info = cluster_vectors(vectors, [m.role for m in messages], config, seed=seed)
    return Clustering(messages, vectors, ids, info)


def tfidf_names(clusters: Clustering, name_words: int = 3, taken: Sequence[str] = ()) -> list[str]:
    """A unique TF-IDF keyword name for each cluster of `clusters`."""
    texts = [[clusters.messages[i].text for i in members] for members in clusters.members()]
    return unique_names(ctfidf_keywords(texts, top_n=name_words + 4), n_words=name_words, taken=taken)


def build_catalog(clusters: Clustering, names: Sequence[str], n_representatives: int,
                  descriptions: Sequence[str] | None = None) -> pd.DataFrame:
    """Catalog rows (intent, description, examples, count), largest intent first."""
    rows = []
    for c, members in enumerate(clusters.members()):
        reps = representatives(clusters.vectors, members, n_representatives)
        roles = sorted({clusters.messages[i].role for i in members})
        description = descriptions[c] if descriptions else f"{'/'.join(roles)} messages about {names[c].replace('_', ' ')}"
        rows.append({"intent": names[c], "description": description,
                     "examples": [clusters.messages[i].text for i in reps], "count": int(len(members))})
    frame = pd.DataFrame(rows, columns=CATALOG_COLUMNS)
    return frame.sort_values(["count", "intent"], ascending=[False, True], kind="stable").reset_index(drop=True)


def label_embeddings(dataset: Dataset, embedder: Embedder, config: EmbeddingLabelerConfig | None = None,
                     seed: int = 0, progress: bool = False) -> LabelingResult:
    """Label every message with the TF-IDF name of its embedding cluster."""
    config = config or EmbeddingLabelerConfig()
    start = time.perf_counter()
    clusters = cluster_dataset(dataset, embedder, config, seed=seed, progress=progress)
    names = tfidf_names(clusters, config.name_words)
    labels = {m.key: names[c] for m, c in zip(clusters.messages, clusters.cluster_ids)}
    catalog = build_catalog(clusters, names, config.n_representatives)
    config_dict = asdict(config)
    config_dict["threshold_grid"] = [config.threshold_grid[0], config.threshold_grid[-1], len(config.threshold_grid)]
    stats = {"labeler": "embeddings", "embedder": getattr(embedder, "model", type(embedder).__name__),
             "calls": 0, "seconds": round(time.perf_counter() - start, 3), "n_intents": len(names),
             "n_messages": len(clusters.messages), "seed": seed, "config": config_dict,
             **{k: v for k, v in clusters.info.items() if k != "method"}}
    return LabelingResult(labels=labels, catalog=catalog, stats=stats, failures=[])
