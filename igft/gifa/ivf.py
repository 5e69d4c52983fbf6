"""Approximate top-k over labeled messages with an inverted-file index (faiss IVF, 8-bit codes).

Above a few tens of thousands of labeled messages an exact matrix product per conversation costs
O(labeled) time, O(labeled^2) over a run. An inverted file answers from a few of its lists: the
labeled rows are partitioned by spherical k-means into about 4 sqrt(n) cells, a query scores the
cell centroids (one small product) and then only the rows of its NPROBE best cells. Adding a
conversation appends each row to its cell's list (one centroid product), so insertion costs
O(sqrt(n)) per row where an HNSW graph pays a graph search per row.

The lists hold 8-bit codes of each row's residual to its centroid (faiss's scalar quantizer), not the
float vectors: scanning a list is memory-bound, and a quarter of the bytes made search at 1M messages
almost twice as fast (0.54x) at the same recall (benchmarks/ivf_codes.py). The codes only choose
CANDIDATES_PER_K x top_k candidates; the caller re-scores those exactly from the float embeddings, so
the order (and every tie) is that of exact search among the rows found.

Why not HNSW, which issue 12 named first: faiss's IndexHNSWFlat, fed one conversation at a time on
one thread (the only way its graph is deterministic), spent 2.2 ms per conversation inserting and
1.5 ms searching at 1M messages on a 2-core CPU (benchmarks/gifa_scale.py), nearly twice the whole
2 ms budget, with recall@5 0.926; usearch was no faster. This index takes 1.9 ms for everything at a
recall@5 of 0.994 on the same data (README, Stage 1).

The partition is retrained as the index grows (at REBUILD_GROWTH times the size it was trained on),
so cells stay small: k-means is seeded and sees a seeded subsample, and rows are re-added in labeling
order, so the index -- and every answer -- is the same for the same seed and insertion order.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

CELLS_PER_SQRT_N = 4      # cells = 4 sqrt(n): centroid scoring and list scans cost about the same
NPROBE = 8                # cells scanned per query: recall vs time
REBUILD_GROWTH = 4        # retrain the partition when the index has grown this many times
TRAIN_POINTS_PER_CELL = 39  # k-means sample per cell (faiss's own minimum, without its warning)
KMEANS_ITERATIONS = 10
CANDIDATES_PER_K = 2      # fetch 2 top_k rows by code score; the caller re-scores them exactly


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class IVFRows:
    """An inverted-file index over vectors added in order; row r is the r-th vector added.

    Built from the rows labeled so far (`vectors`); `add` appends, and retrains the partition on all
    rows once the index has grown to REBUILD_GROWTH times the size it was trained on.
    """

    def __init__(self, vectors: np.ndarray, seed: int = 0):
        import faiss

        self._faiss = faiss
        self.seed = int(seed)
        self.rebuilds = 0
        self._build(np.ascontiguousarray(vectors, dtype=np.float32))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def cells(self) -> int:
        return int(self.index.nlist)

    def _one_thread(self, work):
        # One thread: k-means and list appends stay deterministic, and a conversation's ~10 queries are
        # far too few to pay for waking an OpenMP team (on a loaded machine that cost more than the search).
        faiss = self._faiss
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return work()
        finally:
            faiss.omp_set_num_threads(threads)

    def _build(self, rows: np.ndarray) -> None:
        faiss = self._faiss
        n, dim = rows.shape
        cells = max(1, min(int(CELLS_PER_SQRT_N * math.sqrt(n)), n // TRAIN_POINTS_PER_CELL))
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, cells, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)  # by_residual: codes of x - centroid
        index.cp.seed, index.cp.niter, index.cp.spherical = self.seed, KMEANS_ITERATIONS, True
        index.cp.min_points_per_centroid = 1  # the sample below is sized by us; no faiss warning
        index.cp.max_points_per_centroid = TRAIN_POINTS_PER_CELL
        sample = rows[np.sort(np.random.default_rng(self.seed).permutation(n)[: cells * TRAIN_POINTS_PER_CELL])]
        self._one_thread(lambda: (index.train(sample), index.add(rows)))
        self.index, self.trained_on = index, n

    def add(self, vectors: np.ndarray, all_rows: Callable[[], np.ndarray]) -> None:
        """Append rows; `all_rows()` gives every labeled row (these included), for a rebuild."""
        if len(self) + len(vectors) >= REBUILD_GROWTH * self.trained_on:
            self.rebuilds += 1
            self._build(np.ascontiguousarray(all_rows(), dtype=np.float32))
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._one_thread(lambda: self.index.add(vectors))

    def candidates(self, queries: np.ndarray, top_k: int) -> np.ndarray:
        """(m, c) labeled-row numbers, c >= top_k candidates per query (-1 for none), chosen by the
        8-bit codes' inner products: approximate, for the caller to re-score."""
        wanted = min(len(self), CANDIDATES_PER_K * top_k)
        self.index.nprobe = min(NPROBE, self.cells)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        _, rows = self._one_thread(lambda: self.index.search(queries, wanted))
        return rows
