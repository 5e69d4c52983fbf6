"""GIFA bookkeeping at scale: ms per conversation and peak memory at 10k, 100k and 1M messages.

The LM answers instantly (it parses the prompt and names one intent per message), the embeddings are
synthetic (unit vectors around a few hundred centres, like recurring support messages), so what is
measured is igft's own work per conversation: retrieval, prompt building, parsing, catalog and index
updates. Retrieval is exact below GifaConfig.ann_threshold labeled messages and HNSW (faiss) above.
Each size runs in its own process, so the peak resident memory printed is that size's, with one BLAS
and one OpenMP thread: small matrix products spread over threads slow down badly on a loaded machine
(on this shared 2-core sandbox a 10x64 @ 64x3000 product took 24 ms with two OpenBLAS threads, 0.6 ms
with one).

    python benchmarks/gifa_scale.py                      # 10k, 100k, 1M messages, HNSW above the threshold
    python benchmarks/gifa_scale.py --sizes 10000 100000 --exact-sizes 10000
    python benchmarks/gifa_scale.py --one 100000 --retrieval exact    # one size, one mode

Also checks that on the toy data the labels with HNSW equal those of exact search.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MESSAGES_PER_CONVERSATION = 10


class InstantLM:
    """Answers a GIFA prompt at once: `i. role_topic` per message, reusing a shown intent when it fits."""

    model = "instant"

    def complete(self, request):
        from igft.llm.base import Completion
        from igft.llm.loopback_server import labeling_answer

        return Completion(text=labeling_answer(request.messages[-1]["content"]) or "", model=self.model)


class SyntheticEmbedder:
    """Looks up a precomputed unit vector per message text."""

    model = "synthetic"

    def __init__(self, texts, dim, seed=0):
        rng = np.random.default_rng(seed)
        centres = rng.standard_normal((300, dim)).astype(np.float32)
        topic = np.array([int(t.split("topic")[1].split()[0]) for t in texts]) % 300
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
        topics = rng.integers(0, 300, MESSAGES_PER_CONVERSATION)
        messages = tuple(Message(c, i, "customer" if i % 2 == 0 else "assistant",
                                 f"topic{t} {'asks' if i % 2 == 0 else 'answers'} about case {c}-{i}")
                         for i, t in enumerate(topics))
        conversations.append(Conversation(c, messages))
    return Dataset(conversations, f"synthetic-{n_messages}")


def run_one(n_messages: int, retrieval: str, dim: int) -> dict:
    from igft.gifa import GifaConfig, label_dataset

    dataset = synthetic_dataset(n_messages)
    embedder = SyntheticEmbedder([m.line for m in dataset.messages], dim)
    config = GifaConfig(worked_example=False, ann_threshold=None if retrieval == "exact" else GifaConfig().ann_threshold)
    started = time.perf_counter()
    result = label_dataset(dataset, InstantLM(), embedder, config, progress=False)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"messages": dataset.n_messages, "conversations": len(dataset), "retrieval": retrieval, "dim": dim,
            "ms_per_conversation": round(1000 * seconds / len(dataset), 3), "seconds": round(seconds, 1),
            "peak_rss_mb": round(peak_mb), "intents": len(result.catalog), "failures": len(result.failures)}


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
    parser.add_argument("--exact-sizes", type=int, nargs="*", default=[10_000],
                        help="sizes also run with exact search only (exact is O(n) per conversation)")
    parser.add_argument("--dim", type=int, default=64, help="embedding dimension of the synthetic vectors")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--retrieval", choices=("auto", "exact"), default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.retrieval, args.dim)))
        return
    print(f"toy data: HNSW labels identical to exact search: {toy_check()}")
    print(f"{'messages':>9} {'retrieval':>9} {'ms/conv':>8} {'seconds':>8} {'peak MB':>8} {'intents':>8}")
    jobs = [(n, "exact") for n in args.exact_sizes] + [(n, "auto") for n in args.sizes]
    for n, mode in jobs:
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        done = subprocess.run([sys.executable, __file__, "--one", str(n), "--retrieval", mode, "--dim", str(args.dim)],
                              capture_output=True, text=True, env=env)
        if done.returncode != 0:
            print(f"{n:>9} {mode:>9} failed: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        label = "exact" if mode == "exact" else ("hnsw" if n > 20_000 else "exact")
        print(f"{r['messages']:>9} {label:>9} {r['ms_per_conversation']:>8.3f} {r['seconds']:>8.1f} "
              f"{r['peak_rss_mb']:>8} {r['intents']:>8}", flush=True)


if __name__ == "__main__":
    main()
