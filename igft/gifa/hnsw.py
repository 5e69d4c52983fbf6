"""Approximate top-k over labeled messages with an HNSW graph (faiss), re-ranked exactly.

Above a few tens of thousands of labeled messages an exact matrix product per conversation costs
O(labeled) time, O(labeled^2) over a run. HNSW answers in about O(log n). faiss's IndexHNSWFlat is
the established implementation; it is fed one conversation at a time (insertion in labeling order),
single-threaded during insertion and with its level generator seeded, so the graph -- and every
answer -- is the same for the same seed and insertion order. The candidates it returns are
re-scored exactly and ordered by (-score, row), so ties go to the earlier labeled message as in the
exact search, and the top of the list equals exact search whenever the true neighbours are among the
candidates (always, below the size where the index takes over).
"""
from __future__ import annotations

import numpy as np

HNSW_M = 32               # graph degree: recall vs memory
HNSW_EF_CONSTRUCTION = 64
MIN_CANDIDATES = 32       # candidates fetched per query before the exact re-rank


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class HNSWRows:
    """An HNSW graph over vectors added in order; row r is the r-th vector added."""

    def __init__(self, dim: int, seed: int = 0):
        import faiss

        self._faiss = faiss
        self.index = faiss.IndexHNSWFlat(int(dim), HNSW_M, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        self.index.hnsw.rng = faiss.RandomGenerator(int(seed))  # levels drawn from our seed

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        faiss = self._faiss
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # parallel insertion would make the graph depend on thread timing
        try:
            self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        finally:
            faiss.omp_set_num_threads(threads)

    def candidates(self, queries: np.ndarray, top_k: int) -> np.ndarray:
        """(m, c) labeled-row numbers, -1 for none; c >= top_k candidates per query."""
        wanted = min(len(self), max(MIN_CANDIDATES, 4 * top_k))
        self.index.hnsw.efSearch = max(64, wanted)
        _, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), wanted)
        return rows
