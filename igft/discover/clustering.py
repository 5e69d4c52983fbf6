"""Clustering of message embeddings: KMeans with a given k, agglomerative clustering with a given or
searched cosine-distance threshold, and scikit-learn's HDBSCAN.

All functions take L2-normalised vectors (rows) and return integer cluster ids 0..k-1, numbered in
order of first appearance so that equal partitions get equal ids (determinism is easy to test).
`roles` (optional, one per row) keeps customer and assistant messages in separate clusters: in
customer-support data an intent belongs to one side of the conversation.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

logger = logging.getLogger(__name__)

# Cosine distance lies in [0, 2]; pairs of different roles get more than any real distance, so
# average linkage never merges them below a threshold and HDBSCAN never links them.
CROSS_ROLE_DISTANCE = 4.0
DEFAULT_THRESHOLD_GRID = tuple(round(0.10 + 0.025 * i, 3) for i in range(29))  # 0.10 .. 0.80


@dataclass
class ThresholdSearch:
    """The outcome of a label-free threshold search: the chosen threshold and every score tried."""

    threshold: float
    scores: dict[float, float] = field(default_factory=dict)
    n_clusters: dict[float, int] = field(default_factory=dict)
    criterion: str = "silhouette"
    best_silhouette: float | None = None


def renumber(labels: Sequence[int]) -> np.ndarray:
    """Cluster ids renumbered 0..k-1 in order of first appearance."""
    mapping: dict[int, int] = {}
    return np.array([mapping.setdefault(int(x), len(mapping)) for x in labels], dtype=int)


def cosine_distance_matrix(vectors: np.ndarray, roles: Sequence[str] | None = None) -> np.ndarray:
    """Pairwise cosine distances (clipped to [0, 2]); cross-role pairs get CROSS_ROLE_DISTANCE when roles are given."""
    sims = np.clip(vectors.astype(np.float64) @ vectors.astype(np.float64).T, -1.0, 1.0)
    dist = 1.0 - sims
    np.fill_diagonal(dist, 0.0)
    dist = np.clip(dist, 0.0, 2.0)
    if roles is not None:
        roles_arr = np.asarray(roles)
        dist[roles_arr[:, None] != roles_arr[None, :]] = CROSS_ROLE_DISTANCE
    return dist


def average_linkage(dist: np.ndarray) -> np.ndarray:
    """scipy's average-linkage tree over a square distance matrix (deterministic)."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    return linkage(squareform(dist, checks=False), method="average")


def cut_tree(tree: np.ndarray, n: int, *, threshold: float | None = None, n_clusters: int | None = None) -> np.ndarray:
    """Flat clusters from a linkage tree: merges at distance <= threshold, or exactly n_clusters groups."""
    from scipy.cluster.hierarchy import fcluster

    if n <= 1:
        return np.zeros(n, dtype=int)
    if n_clusters is not None:
        return renumber(fcluster(tree, t=min(max(1, n_clusters), n), criterion="maxclust"))
    return renumber(fcluster(tree, t=float(threshold), criterion="distance"))


SILHOUETTE_SAMPLE = 3000  # above this many messages the silhouette is estimated on a seeded sample


def silhouette(dist: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Mean silhouette over a precomputed distance matrix (singletons count 0, as in scikit-learn)."""
    from sklearn.metrics import silhouette_score

    k = len(set(labels.tolist()))
    if k < 2 or k >= len(labels):
        return -1.0
    sample = SILHOUETTE_SAMPLE if len(labels) > SILHOUETTE_SAMPLE else None
    return float(silhouette_score(dist, labels, metric="precomputed", sample_size=sample, random_state=seed))


CRITERIA = ("auto", "neighbors", "silhouette")


def neighbor_threshold(dist: np.ndarray, quantile: float) -> float:
    """The `quantile` of every message's distance to its nearest neighbour.

    Scale-free: it adapts to how tight an embedder's space is. Cutting the average-linkage tree
    there leaves roughly (1 - quantile) of the messages as singletons, the ones with no close
    paraphrase in the data.
    """
    d = dist.copy()
    np.fill_diagonal(d, np.inf)
    nearest = d.min(axis=1)
    nearest = nearest[np.isfinite(nearest) & (nearest <= 2.0)]
    if nearest.size == 0:
        return 0.0
    return float(np.quantile(nearest, quantile))


def search_threshold(dist: np.ndarray, tree: np.ndarray, grid: Sequence[float] = DEFAULT_THRESHOLD_GRID,
                     plain_dist: np.ndarray | None = None, criterion: str = "auto", quantile: float = 0.7,
                     min_structure: float = 0.25, seed: int = 0) -> ThresholdSearch:
    """Choose where to cut the tree, with no gold labels.

    "silhouette": the grid value with the best mean silhouette, measured on `plain_dist` (default
    `dist`; pass the cosine distances without the cross-role penalty, which would inflate every
    score); ties go to the smaller threshold (finer clusters).
    "neighbors": the `quantile` of nearest-neighbour distances (see neighbor_threshold).
    "auto": silhouette when its best score shows a substantial cluster structure (>= min_structure;
    Kaufman & Rousseeuw read silhouettes below 0.25 as "no substantial structure"), else neighbors.
    Silhouette is reliable on well-separated groups, where nearest neighbours get closer as the data
    grows and the quantile would over-split; on real chats with many small intents the silhouette
    curve is flat and peaks far too coarse, while the quantile tracks how far paraphrases lie apart.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown threshold criterion {criterion!r}; use one of {CRITERIA}")
    n = dist.shape[0]
    result = ThresholdSearch(threshold=float(grid[0]), criterion=criterion)
    if criterion in ("silhouette", "auto"):
        measure = dist if plain_dist is None else plain_dist
        best = -np.inf
        for t in grid:
            labels = cut_tree(tree, n, threshold=t)
            score = silhouette(measure, labels, seed=seed)
            result.scores[float(t)] = score
            result.n_clusters[float(t)] = int(labels.max()) + 1 if n else 0
            if score > best + 1e-12:
                best, result.threshold = score, float(t)
        result.best_silhouette = float(best)
        if criterion == "silhouette" or best >= min_structure:
            result.criterion = "silhouette"
            logger.info("threshold %.3f: best silhouette %.3f", result.threshold, best)
            return result
    result.criterion = "neighbors"
    result.threshold = neighbor_threshold(dist, quantile)
    logger.info("threshold %.3f: %.2f quantile of nearest-neighbour distances", result.threshold, quantile)
    return result


def kmeans(vectors: np.ndarray, k: int, *, seed: int = 0, roles: Sequence[str] | None = None) -> np.ndarray:
    """KMeans with k clusters (k-means++ init, 10 restarts from `seed`).

    With roles, a large one-hot role block is appended to each vector: a centroid between two roles
    is then far from every point, so KMeans keeps roles apart while still choosing how many of the
    k clusters each role gets.
    """
    from sklearn.cluster import KMeans

    n = len(vectors)
    k = int(min(max(1, k), n))
    data = vectors.astype(np.float64)
    if roles is not None:
        names = sorted(set(roles))
        onehot = np.zeros((n, len(names)))
        onehot[np.arange(n), [names.index(r) for r in roles]] = 10.0
        data = np.hstack([data, onehot])
    model = KMeans(n_clusters=k, n_init=10, random_state=seed)
    return renumber(model.fit_predict(data))


def hdbscan(dist: np.ndarray, *, min_cluster_size: int = 2, min_samples: int | None = 1) -> np.ndarray:
    """scikit-learn HDBSCAN on a precomputed distance matrix; each noise point becomes its own cluster."""
    from sklearn.cluster import HDBSCAN

    n = dist.shape[0]
    if n < max(2, min_cluster_size):
        return np.arange(n, dtype=int)
    labels = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples,
                     metric="precomputed", copy=True).fit_predict(dist)
    # Noise is a message unlike any group: keep it as a singleton intent rather than dropping it.
    next_id = labels.max() + 1
    out = labels.copy()
    for i in np.flatnonzero(labels < 0):
        out[i] = next_id
        next_id += 1
    return renumber(out)
