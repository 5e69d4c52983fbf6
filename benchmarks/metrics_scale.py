"""How long a full clustering report takes at scale, against a pair-enumeration reference.

    python benchmarks/metrics_scale.py [--messages 100000] [--intents 1000] [--reference-messages 3000]

Prints (1) the time of igft.metrics.clustering_report (every figure, Hungarian accuracy and 20
error examples) on synthetic data, next to scikit-learn's adjusted_mutual_info_score alone, and
(2) at a size where it is still feasible, the time of a reference that enumerates every message
pair (O(n^2), numpy row by row, as the paper's evaluator does in Python) to get the pair counts and
error examples, next to the contingency-table report on the same labels, with their speed ratio.
"""
from __future__ import annotations

import argparse
import random
import time

import numpy as np

from igft.metrics import clustering_report
from igft.synthetic import synthetic_dataset


def noisy_prediction(gold: list[str], n_extra: int, seed: int) -> list[str]:
    """A labeler-like prediction: mostly renamed gold, with merges of intents and random noise."""
    rng = random.Random(seed)
    names = sorted(set(gold))
    merge = {name: names[rng.randrange(len(names))] if rng.random() < 0.15 else name for name in names}
    return [f"pred_{merge[g]}" if rng.random() < 0.75 else f"noise_{rng.randrange(n_extra)}" for g in gold]


def pair_enumeration_reference(gold: list[str], pred: list[str], n_examples: int = 20, seed: int = 0) -> dict:
    """Pair counts and error examples by enumerating all n(n-1)/2 pairs (one numpy row at a time)."""
    g = np.unique(gold, return_inverse=True)[1]
    p = np.unique(pred, return_inverse=True)[1]
    same_both = splits = merges = 0
    split_pairs, merge_pairs = [], []
    for i in range(len(g) - 1):
        same_g = g[i + 1:] == g[i]
        same_p = p[i + 1:] == p[i]
        same_both += int(np.sum(same_g & same_p))
        s = np.flatnonzero(same_g & ~same_p) + i + 1
        m = np.flatnonzero(~same_g & same_p) + i + 1
        splits += len(s)
        merges += len(m)
        split_pairs.extend((i, int(j)) for j in s)
        merge_pairs.extend((i, int(j)) for j in m)
    rng = random.Random(seed)
    examples = rng.sample(split_pairs, min(n_examples // 2, len(split_pairs))) + \
        rng.sample(merge_pairs, min(n_examples // 2, len(merge_pairs)))
    return {"same_both": same_both, "false_splits": splits, "false_merges": merges, "examples": examples}


def best_time(fn, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--intents", type=int, default=1000)
    parser.add_argument("--reference-messages", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    data = synthetic_dataset(args.messages, args.intents, seed=0)
    gold = [m.intent for m in data.messages]
    texts = [m.text for m in data.messages]
    pred = noisy_prediction(gold, n_extra=args.intents // 5, seed=1)
    seconds, report = best_time(lambda: clustering_report(gold, pred, texts=texts), args.repeat)
    print(f"full report, {len(gold):,} messages, {report.n_gold_intents} gold / {report.n_pred_intents} predicted intents: "
          f"{seconds:.2f} s (best of {args.repeat}; target < 2 s)")
    print(f"  AMI {report.AMI:.4f}  NCA {report.NCA:.4f}  purity {report.purity:.4f}  Hungarian acc {report.accuracy_hungarian:.4f}  "
          f"false splits {report.false_splits:,}  false merges {report.false_merges:,}")
    from sklearn.metrics import adjusted_mutual_info_score

    sk_seconds, sk_ami = best_time(lambda: adjusted_mutual_info_score(gold, pred), 1)
    print(f"  scikit-learn adjusted_mutual_info_score alone: {sk_seconds:.2f} s (AMI {sk_ami:.4f}, "
          f"|difference| {abs(sk_ami - report.AMI):.1e}); full report / sklearn AMI = {seconds / sk_seconds:.2f}")

    n = args.reference_messages
    small_gold, small_pred, small_texts = gold[:n], pred[:n], texts[:n]
    ref_seconds, ref = best_time(lambda: pair_enumeration_reference(small_gold, small_pred), 1)
    ours_seconds, ours = best_time(lambda: clustering_report(small_gold, small_pred, texts=small_texts), args.repeat)
    assert (ref["false_splits"], ref["false_merges"]) == (ours.false_splits, ours.false_merges)
    print(f"pair enumeration reference, {n:,} messages ({n * (n - 1) // 2:,} pairs): {ref_seconds:.2f} s; "
          f"contingency-table report (all figures): {ours_seconds:.3f} s; speed ratio {ref_seconds / ours_seconds:.0f}x "
          f"(same false splits {ours.false_splits:,} / merges {ours.false_merges:,})")


if __name__ == "__main__":
    main()
