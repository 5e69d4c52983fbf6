"""What the IVF lists should hold: float vectors, fp16 or 8-bit codes (igft/gifa/ivf.py ships 8-bit).

Measured at the tail of a 1M-message GIFA run, where search costs most: an index partitioned as
IVFRows would be at that point (trained on 320k rows, 4 sqrt(n) cells, then filled to 970k), then
--steps conversations of 10 messages each searched (10 candidates, re-scored exactly for the coded
variants, as RetrievalIndex does) and added. Same synthetic 64-dim data as benchmarks/gifa_scale.py;
all variants in one process, one thread; prints ms per conversation and recall@5 against exact
search, and each variant's search time as a ratio to the float lists'.

    python benchmarks/ivf_codes.py [--steps 3000]
"""
from __future__ import annotations

import argparse
import math
import time

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from igft.gifa import ivf  # noqa: E402  (the shipped index's settings, so the variants differ only in codes)

DIM, TOPICS, N = 64, 300, 1_000_000
TRAINED_ON, TOP_K = 320_000, 5


def make_index(faiss, kind: str, rows: np.ndarray, cells: int):
    quantizer = faiss.IndexFlatIP(DIM)
    if kind == "float":
        index = faiss.IndexIVFFlat(quantizer, DIM, cells, faiss.METRIC_INNER_PRODUCT)
    else:
        codes = {"fp16": faiss.ScalarQuantizer.QT_fp16, "8-bit": faiss.ScalarQuantizer.QT_8bit}[kind]
        index = faiss.IndexIVFScalarQuantizer(quantizer, DIM, cells, codes, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed, index.cp.niter, index.cp.spherical = 0, ivf.KMEANS_ITERATIONS, True
    index.cp.min_points_per_centroid, index.cp.max_points_per_centroid = 1, ivf.TRAIN_POINTS_PER_CELL
    sample = rows[np.sort(np.random.default_rng(0).permutation(len(rows))[: cells * ivf.TRAIN_POINTS_PER_CELL])]
    index.train(sample)
    index.add(rows)
    index.nprobe = ivf.NPROBE
    return index


def main() -> None:
    import faiss

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="conversations searched and added per variant")
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((TOPICS, DIM)).astype(np.float32)
    x = centres[rng.integers(0, TOPICS, N)] + 0.4 * rng.standard_normal((N, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    filled = N - 10 * args.steps
    cells = int(ivf.CELLS_PER_SQRT_N * math.sqrt(TRAINED_ON))
    print(f"{'lists hold':>10} {'search ms':>9} {'add ms':>7} {'search / float':>14} {'recall@5':>8}")
    base = None
    for kind in ("float", "fp16", "8-bit"):
        index = make_index(faiss, kind, x[:TRAINED_ON], cells)
        index.add(x[TRAINED_ON:filled])
        search_s = add_s = 0.0
        found = checked = 0
        for step in range(args.steps):
            queries = x[filled + 10 * step: filled + 10 * step + 10]
            t = time.perf_counter()
            _, rows = index.search(queries, ivf.CANDIDATES_PER_K * TOP_K)
            exact = np.einsum("mcd,md->mc", x[np.where(rows < 0, 0, rows)], queries)  # the caller's re-scoring
            top = np.take_along_axis(rows, np.argsort(-exact, axis=1)[:, :TOP_K], 1)
            search_s += time.perf_counter() - t
            t = time.perf_counter()
            index.add(queries)
            add_s += time.perf_counter() - t
            if step % 50 == 0:  # recall against exact search over every row added so far (untimed)
                labeled = x[: filled + 10 * step]
                want = np.argpartition(-(queries @ labeled.T), TOP_K - 1, axis=1)[:, :TOP_K]
                found += sum(len(set(a) & set(b)) for a, b in zip(top.tolist(), want.tolist()))
                checked += TOP_K * len(queries)
        base = base or search_s
        print(f"{kind:>10} {1000 * search_s / args.steps:>9.3f} {1000 * add_s / args.steps:>7.3f} "
              f"{search_s / base:>13.2f}x {found / checked:>8.4f}", flush=True)


if __name__ == "__main__":
    main()
