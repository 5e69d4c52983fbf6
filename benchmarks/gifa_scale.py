"""GIFA bookkeeping at scale: ms per conversation and peak memory at 10k, 100k and 1M messages.

The LM answers instantly (it parses the prompt and names one intent per message), the embeddings are
synthetic (unit vectors around 300 topic centres, like recurring support messages; 600 intents), and
progress is written to a scratch out folder as `igft label` does, so what is measured is igft's own
work per conversation: retrieval, prompt building, parsing, catalog and index updates, the progress
line. Retrieval is exact below GifaConfig.ann_threshold labeled messages and an IVF index (faiss,
igft/gifa/ivf.py) above; for those runs the time inside faiss (insertion with the partition's rebuilds,
search) and the recall@5 of the approximate neighbours against exact search (checked on 200
conversations spread over the run, its time left out) are printed too.
Times are wall and CPU (process_time): on a shared machine the wall time mostly measures the load.
Each size runs in its own process, so the peak resident memory printed is that size's, with one BLAS
and one OpenMP thread: small matrix products spread over threads slow down badly on a loaded machine
(on this shared 2-core sandbox a 10x64 @ 64x3000 product took 24 ms with two OpenBLAS threads, 0.6 ms
with one).

    python benchmarks/gifa_scale.py                      # exact at 10k and 100k, auto (IVF above 20k) at 10k, 100k, 1M
    python benchmarks/gifa_scale.py --sizes 10000 100000 --exact-sizes 10000
    python benchmarks/gifa_scale.py --one 100000 --retrieval exact    # one size, one mode

Also checks that on the toy data the labels with the IVF index equal those of exact search.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MESSAGES_PER_CONVERSATION = 10
TOPICS = 300
RECALL_CHECKS = 200  # approximate searches checked against exact search per run (spread evenly)


def topic_word(topic: int) -> str:
    """A letters-only word per topic ("qaa".."qln"): the instant LM names intents after it."""
    return "q" + chr(97 + topic // 26) + chr(97 + topic % 26)


class InstantLM:
    """Answers a GIFA prompt at once: `i. role_topic` per message, reusing a shown intent when it fits."""

    model = "instant"

    def __init__(self):
        self.seconds = self.cpu_seconds = 0.0  # the LM's own time (reading the prompt), left out of igft's figures

    def complete(self, request):
        from igft.llm.base import Completion
        from igft.llm.loopback_server import labeling_answer

        t, c = time.perf_counter(), time.thread_time()
        text = labeling_answer(request.messages[-1]["content"]) or ""
        self.seconds += time.perf_counter() - t
        self.cpu_seconds += time.thread_time() - c
        return Completion(text=text, model=self.model)


class SyntheticEmbedder:
    """Looks up a precomputed unit vector per message text."""

    model = "synthetic"

    def __init__(self, texts, dim, seed=0):
        rng = np.random.default_rng(seed)
        centres = rng.standard_normal((TOPICS, dim)).astype(np.float32)
        by_word = {topic_word(t): t for t in range(TOPICS)}
        # texts are "customer: qab asks about ..." lines
        topic = np.array([by_word[t.split(" ", 2)[1]] for t in texts])
        rows = centres[topic] + 0.4 * rng.standard_normal((len(texts), dim)).astype(np.float32)
        self.vectors = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        self.row = {t: i for i, t in enumerate(texts)}

    def embed(self, texts):
        return self.vectors[[self.row[t] for t in texts]]


def synthetic_dataset(n_messages: int, seed: int = 0):
    from igft.data import Conversation, Dataset, Message

    rng = np.random.default_rng(seed)
    conversations = []
    for c in range(n_messages // MESSAGES_PER_CONVERSATION):
        topics = rng.integers(0, TOPICS, MESSAGES_PER_CONVERSATION)
        messages = tuple(Message(c, i, "customer" if i % 2 == 0 else "assistant",
                                 f"{topic_word(t)} {'asks' if i % 2 == 0 else 'answers'} about case {c}-{i}")
                         for i, t in enumerate(topics))
        conversations.append(Conversation(c, messages))
    return Dataset(conversations, f"synthetic-{n_messages}")


class FaissClock:
    """Time spent inside faiss, and recall@5 of the IVF index against exact search on sampled conversations."""

    def __init__(self, every: int):
        self.add_s = self.search_s = self.check_s = self.check_cpu_s = 0.0
        self.calls, self.every = 0, max(1, every)
        self.found = self.wanted = 0
        self.rebuilds = self.cells = 0

    def install(self):
        from igft.gifa import catalog, ivf

        clock = self
        init, add, candidates = ivf.IVFRows.__init__, ivf.IVFRows.add, ivf.IVFRows.candidates
        search_ann = catalog.RetrievalIndex._search_ann

        def timed_init(self, vectors, seed=0):
            t = time.perf_counter()
            init(self, vectors, seed)
            clock.add_s += time.perf_counter() - t

        def timed_add(self, vectors, all_rows):
            t = time.perf_counter()
            add(self, vectors, all_rows)
            clock.add_s += time.perf_counter() - t
            clock.rebuilds, clock.cells = self.rebuilds + 1, self.cells

        def timed_candidates(self, queries, top_k):
            t = time.perf_counter()
            out = candidates(self, queries, top_k)
            clock.search_s += time.perf_counter() - t
            return out

        def checked_search(self, queries, k):
            rows, scores = search_ann(self, queries, k)
            clock.calls += 1
            if clock.calls % clock.every == 0:
                t, c = time.perf_counter(), time.thread_time()
                labeled = self._labeled_rows(self.n_labeled)
                exact = np.argpartition(-(queries @ labeled.T), k - 1, axis=1)[:, :k]
                for got, want in zip(rows, exact):
                    clock.found += len(set(got.tolist()) & set(want.tolist()))
                    clock.wanted += k
                clock.check_s += time.perf_counter() - t
                clock.check_cpu_s += time.thread_time() - c
            return rows, scores

        ivf.IVFRows.__init__, ivf.IVFRows.add, ivf.IVFRows.candidates = timed_init, timed_add, timed_candidates
        catalog.RetrievalIndex._search_ann = checked_search


def run_one(n_messages: int, retrieval: str, dim: int) -> dict:
    from igft.gifa import GifaConfig, label_dataset

    dataset = synthetic_dataset(n_messages)
    embedder = SyntheticEmbedder([m.line for m in dataset.messages], dim)
    config = GifaConfig(worked_example=False, ann_threshold=None if retrieval == "exact" else GifaConfig().ann_threshold)
    clock = FaissClock(every=len(dataset) // RECALL_CHECKS)
    clock.install()
    lm = InstantLM()
    with tempfile.TemporaryDirectory(prefix="gifa-scale-") as out:
        started, cpu = time.perf_counter(), time.process_time()
        result = label_dataset(dataset, lm, embedder, config, out_dir=out, progress=False)
        # igft's time: the LM's own time and the recall checks are left out, of the wall time by their
        # wall time, of the CPU time by their CPU time (on a loaded machine the two differ a lot).
        seconds = time.perf_counter() - started - clock.check_s - lm.seconds
        cpu_seconds = time.process_time() - cpu - clock.check_cpu_s - lm.cpu_seconds
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"messages": dataset.n_messages, "conversations": len(dataset), "retrieval": retrieval, "dim": dim,
            "ms_per_conversation": round(1000 * seconds / len(dataset), 3), "seconds": round(seconds, 1),
            "cpu_ms_per_conversation": round(1000 * cpu_seconds / len(dataset), 3),
            "lm_ms_per_conversation": round(1000 * lm.seconds / len(dataset), 3),
            "faiss_add_s": round(clock.add_s, 1), "faiss_search_s": round(clock.search_s, 1),
            "recall_at_5": round(clock.found / clock.wanted, 4) if clock.wanted else None,
            "ivf_cells": clock.cells, "ivf_builds": clock.rebuilds,
            "peak_rss_mb": round(peak_mb), "intents": len(result.catalog), "failures": len(result.failures),
            "loadavg": os.getloadavg()[0]}


def toy_check() -> bool:
    from igft.data import load_conversations
    from igft.gifa import GifaConfig, label_dataset
    from igft.llm.base import HashingEmbedder
    from igft.resources import toy_conversations_path

    toy = load_conversations(toy_conversations_path())
    exact = label_dataset(toy, InstantLM(), HashingEmbedder(), GifaConfig(ann_threshold=None), progress=False)
    approx = label_dataset(toy, InstantLM(), HashingEmbedder(), GifaConfig(ann_threshold=20), progress=False)
    return exact.labels == approx.labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--exact-sizes", type=int, nargs="*", default=[10_000, 100_000],
                        help="sizes also run with exact search only (exact is O(n) per conversation)")
    parser.add_argument("--dim", type=int, default=64, help="embedding dimension of the synthetic vectors")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--retrieval", choices=("auto", "exact"), default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.retrieval, args.dim)))
        return
    from igft.gifa import GifaConfig

    threshold = GifaConfig().ann_threshold
    print(f"toy data: IVF labels identical to exact search: {toy_check()}")
    print(f"loadavg at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    results: dict[tuple[int, str], dict] = {}
    for n, mode in [(n, "exact") for n in args.exact_sizes] + [(n, "auto") for n in args.sizes]:
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        done = subprocess.run([sys.executable, __file__, "--one", str(n), "--retrieval", mode, "--dim", str(args.dim)],
                              capture_output=True, text=True, env=env)
        if done.returncode != 0:
            print(f"{n:>9} {mode:>5} failed: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}")
            continue
        r = results[n, mode] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  ran {n} {mode}: {r}", flush=True)
    print("\nms per conversation: wall (CPU of the process); exact/ivf is the ratio of the wall times;"
          " faiss add s includes the partition's builds")
    print(f"{'messages':>9} {'exact':>15} {'ivf':>15} {'exact/ivf':>10} {'ivf s':>7} {'faiss add s':>11} "
          f"{'faiss search s':>14} {'recall@5':>8} {'cells':>6} {'builds':>6} {'peak MB':>7} {'intents':>7}")
    for n in sorted({n for n, _ in results}):
        exact, approx = results.get((n, "exact")), results.get((n, "auto"))
        if approx is not None and n <= threshold:  # below the threshold "auto" is exact search too
            exact, approx = exact or approx, None
        cell = lambda r: f"{r['ms_per_conversation']:.3f} ({r['cpu_ms_per_conversation']:.3f})"  # noqa: E731
        e = cell(exact) if exact else "not run"
        h = cell(approx) if approx else "-"
        ratio = f"{exact['ms_per_conversation'] / approx['ms_per_conversation']:.2f}x" if exact and approx else "-"
        r = approx or exact
        recall = f"{r['recall_at_5']:.4f}" if r.get("recall_at_5") is not None else "-"
        print(f"{n:>9} {e:>15} {h:>15} {ratio:>10} {r['seconds']:>7.1f} {r['faiss_add_s']:>11.1f} "
              f"{r['faiss_search_s']:>14.1f} {recall:>8} {r.get('ivf_cells') or '-':>6} {r.get('ivf_builds') or '-':>6} "
              f"{r['peak_rss_mb']:>7} {r['intents']:>7}")
    print(f"loadavg at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
