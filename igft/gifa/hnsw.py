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

# Measured on 100k clustered unit vectors (dim 64, 10-vector batches, one thread, shared machine at load
# about 5; benchmarks/gifa_scale.py's data): M=32/efSearch 64 reached recall@5 0.999 at 1.7 ms add + 1.5 ms search per conversation,
# M=16/efConstruction 64/efSearch 48 reached 0.993 at 1.0 + 1.1 ms; M=16 with efConstruction 40 fell
# to 0.96. The exact re-rank of MIN_CANDIDATES candidates covers most of the gap in the top 5.
# At 1M messages (benchmarks/gifa_scale.py) recall@5 of these settings fell to 0.93, with 83% of the
# run's time inside faiss (README, Stage 1): raising M or efSearch buys recall with time. On a quieter
# machine the 1M run took 2.54 ms/conv (faiss insert 1.18 + search 0.90 ms). usearch 2.26.6 with the
# same settings (one thread, in-order adds) was tried as the backend and was slower: 1.38 + 1.21 ms per
# conversation at 1M in a stand-alone loop, recall@5 0.934.
HNSW_M = 16               # graph degree: recall vs memory and insertion time
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 48
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

    def _one_thread(self, work):
        # Insertion: parallel insertion would make the graph depend on thread timing. Search: a
        # conversation is ~10 queries, far too few to pay for waking an OpenMP team (on a loaded
        # machine that wake-up cost more than the search itself).
        faiss = self._faiss
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return work()
        finally:
            faiss.omp_set_num_threads(threads)

    def add(self, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._one_thread(lambda: self.index.add(vectors))

    def candidates(self, queries: np.ndarray, top_k: int) -> np.ndarray:
        """(m, c) labeled-row numbers, -1 for none; c >= top_k candidates per query."""
        wanted = min(len(self), max(MIN_CANDIDATES, 4 * top_k))
        self.index.hnsw.efSearch = max(HNSW_EF_SEARCH, wanted)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        _, rows = self._one_thread(lambda: self.index.search(queries, wanted))
        return rows
