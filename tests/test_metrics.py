"""igft.metrics against scikit-learn, a brute-force pair enumeration and hand-computed cases."""
from itertools import combinations, permutations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from igft.data import Conversation, Dataset, Message
from igft.metrics import REPORT_KEYS, _hungarian_total, clustering_report, evaluate_labels, format_report


def brute_force_pairs(gold, pred):
    """Reference: every unordered pair, O(n^2) with numpy broadcasting."""
    g, p = np.asarray(gold), np.asarray(pred)
    same_g = g[:, None] == g[None, :]
    same_p = p[:, None] == p[None, :]
    upper = np.triu(np.ones((len(g), len(g)), dtype=bool), k=1)
    tp = int((same_g & same_p & upper).sum())
    splits = int((same_g & ~same_p & upper).sum())
    merges = int((~same_g & same_p & upper).sum())
    return tp, splits, merges


def random_labelings(n_cases=60, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        n = int(rng.integers(2, 250))
        k, c = int(rng.integers(1, 30)), int(rng.integers(1, 40))
        gold = [f"g{x}" for x in rng.zipf(1.6, n) % k]
        pred = [f"p{x}" for x in rng.integers(0, c, n)]
        if rng.random() < 0.3:  # predictions correlated with gold, as a real labeler's
            pred = [g.replace("g", "p") if rng.random() < 0.7 else q for g, q in zip(gold, pred)]
        yield gold, pred


@pytest.mark.parametrize("case", list(range(60)))
def test_matches_sklearn_on_random_labelings(case):
    gold, pred = list(random_labelings())[case]
    report = clustering_report(gold, pred)
    assert report.AMI == pytest.approx(skm.adjusted_mutual_info_score(gold, pred), abs=1e-9)
    assert report.ARI == pytest.approx(skm.adjusted_rand_score(gold, pred), abs=1e-12)
    assert report.NMI == pytest.approx(skm.normalized_mutual_info_score(gold, pred), abs=1e-12)
    assert report.FMI == pytest.approx(skm.fowlkes_mallows_score(gold, pred), abs=1e-12)


@pytest.mark.parametrize("case", list(range(60)))
def test_pair_counts_match_brute_force_enumeration(case):
    gold, pred = list(random_labelings(seed=1))[case]
    report = clustering_report(gold, pred)
    tp, splits, merges = brute_force_pairs(gold, pred)
    assert (report.false_splits, report.false_merges) == (splits, merges)
    precision = tp / (tp + merges) if tp + merges else 1.0
    recall = tp / (tp + splits) if tp + splits else 1.0
    assert report.pairwise_precision == pytest.approx(precision)
    assert report.pairwise_recall == pytest.approx(recall)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    assert report.pairwise_F1 == pytest.approx(f1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=60))
def test_hypothesis_against_sklearn_and_brute_force(pairs):
    gold = [f"g{a}" for a, _ in pairs]
    pred = [f"p{b}" for _, b in pairs]
    report = clustering_report(gold, pred)
    assert report.AMI == pytest.approx(skm.adjusted_mutual_info_score(gold, pred), abs=1e-9)
    assert report.ARI == pytest.approx(skm.adjusted_rand_score(gold, pred), abs=1e-12)
    assert report.NMI == pytest.approx(skm.normalized_mutual_info_score(gold, pred), abs=1e-12)
    assert report.FMI == pytest.approx(skm.fowlkes_mallows_score(gold, pred), abs=1e-12)
    _, splits, merges = brute_force_pairs(gold, pred)
    assert (report.false_splits, report.false_merges) == (splits, merges)
    assert 0.0 <= report.purity <= 1.0 and 0.0 <= report.accuracy_hungarian <= report.purity + 1e-12


def test_purity_and_nca_hand_case():
    # clusters: A = {x, x, y} (max 2 of 3), B = {y, z} (max 1 of 2), C = {z} (1 of 1); K = 3 gold classes
    gold = ["x", "x", "y", "y", "z", "z"]
    pred = ["A", "A", "A", "B", "B", "C"]
    report = clustering_report(gold, pred)
    assert report.purity == pytest.approx((2 + 1 + 1) / 6)
    mean_cluster_purity = (2 / 3 + 1 / 2 + 1) / 3
    assert report.NCA == pytest.approx((mean_cluster_purity - 1 / 3) / (1 - 1 / 3))
    assert report.AMI_x_NCA == pytest.approx(report.AMI * report.NCA)
    assert report.n_gold_intents == 3 and report.n_pred_intents == 3 and report.n_messages == 6


def test_perfect_and_degenerate_labelings():
    gold = ["a", "a", "b", "c", "c", "c"]
    perfect = clustering_report(gold, ["1", "1", "2", "3", "3", "3"])
    assert perfect.AMI == pytest.approx(1.0) and perfect.NCA == pytest.approx(1.0)
    assert perfect.purity == 1.0 and perfect.accuracy_hungarian == 1.0
    assert perfect.false_splits == perfect.false_merges == 0
    one_cluster = clustering_report(gold, ["z"] * 6)
    assert one_cluster.AMI == 0.0 and one_cluster.pairwise_recall == 1.0
    assert one_cluster.purity == pytest.approx(3 / 6)
    singletons = clustering_report(gold, [str(i) for i in range(6)])
    assert singletons.pairwise_precision == 1.0 and singletons.purity == 1.0  # the paper's conventions
    assert singletons.NCA == pytest.approx(1.0)  # every singleton is pure: why NCA is paired with AMI
    single_class = clustering_report(["a"] * 4, ["1", "1", "2", "2"])
    assert single_class.NCA == 1.0 and single_class.n_gold_intents == 1


@pytest.mark.parametrize("gold,pred,expected", [
    # each cluster maps to its best class one-to-one: 2 + 2 + 1
    (["a", "a", "b", "b", "c", "c"], ["1", "1", "2", "2", "2", "3"], 5),
    # cluster 1 = {a, a}, cluster 2 = {a, a, b, b}: only one may take "a"; 1 -> a, 2 -> b gives 4
    (["a", "a", "a", "a", "b", "b"], ["1", "1", "2", "2", "2", "2"], 4),
    # more clusters than classes
    (["a", "a", "b"], ["1", "2", "3"], 2),
    # a greedy choice (cluster 1 -> a, 3 correct) is worse than the optimum (1 -> b, 2 -> a)
    (["a", "a", "a", "b", "b", "a", "a"], ["1", "1", "1", "1", "1", "2", "2"], 4),
])
def test_hungarian_accuracy_hand_cases(gold, pred, expected):
    assert clustering_report(gold, pred).accuracy_hungarian == pytest.approx(expected / len(gold))


def test_hungarian_sparse_path_equals_dense_and_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(5, 80))
        gold = [f"g{x}" for x in rng.integers(0, 4, n)]
        pred = [f"p{x}" for x in rng.integers(0, 5, n)]
        dense = clustering_report(gold, pred, n_examples=0)
        sparse = clustering_report(gold, pred, n_examples=0, dense_hungarian_limit=0)
        assert dense.accuracy_hungarian == sparse.accuracy_hungarian
        # brute force over all injective maps of the (<= 4) gold classes into clusters
        classes, clusters = sorted(set(gold)), sorted(set(pred))
        table = {(p, g): 0 for p in clusters for g in classes}
        for g, p in zip(gold, pred):
            table[(p, g)] += 1
        best = 0
        padded = clusters + [None] * len(classes)
        for chosen in permutations(padded, len(classes)):
            best = max(best, sum(table.get((p, g), 0) for p, g in zip(chosen, classes) if p is not None))
        assert round(dense.accuracy_hungarian * n) == best


def test_hungarian_total_on_large_sparse_table():
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    n = 3000
    rows, cols = rng.integers(0, 1500, n), rng.integers(0, 1200, n)
    table = sp.csr_matrix((np.ones(n, dtype=np.int64), (rows, cols)), shape=(1500, 1200))
    table.sum_duplicates()
    assert _hungarian_total(table, dense_limit=0) == _hungarian_total(table)


def test_error_examples_are_real_splits_and_merges():
    gold, pred = list(random_labelings(seed=2))[5]
    texts = [f"message {i}" for i in range(len(gold))]
    report = clustering_report(gold, pred, texts=texts, n_examples=20, seed=7)
    splits = [e for e in report.error_examples if e["kind"] == "false_split"]
    merges = [e for e in report.error_examples if e["kind"] == "false_merge"]
    assert len(splits) == min(10, report.false_splits) and len(merges) == min(10, report.false_merges)
    seen = set()
    for example in report.error_examples:
        u, v = example["position_a"], example["position_b"]
        assert u != v and (u, v) not in seen
        seen.add((u, v))
        assert example["message_a"] == texts[u] and example["message_b"] == texts[v]
        assert (example["gold_a"], example["pred_a"], example["gold_b"], example["pred_b"]) == (gold[u], pred[u], gold[v], pred[v])
        if example["kind"] == "false_split":
            assert gold[u] == gold[v] and pred[u] != pred[v]
        else:
            assert gold[u] != gold[v] and pred[u] == pred[v]
    again = clustering_report(gold, pred, texts=texts, n_examples=20, seed=7)
    assert again.error_examples == report.error_examples


def test_error_examples_fill_with_the_other_kind_and_stop_at_the_available_pairs():
    # only false splits exist (every message its own cluster): all slots go to splits
    gold = ["a", "a", "a", "b", "b"]
    report = clustering_report(gold, ["1", "2", "3", "4", "5"], n_examples=20)
    assert {e["kind"] for e in report.error_examples} == {"false_split"}
    assert len(report.error_examples) == report.false_splits == 4
    assert clustering_report(gold, ["1", "1", "1", "2", "2"]).error_examples == []


def test_error_examples_sample_uniformly_over_error_pairs():
    # false splits: class a split 2+1 (2 pairs), class b split 1+1+1 (3 pairs) -> 5 pairs, each ~1/5
    gold = ["a", "a", "a", "b", "b", "b"]
    pred = ["1", "1", "2", "3", "4", "5"]
    counts = {}
    for seed in range(500):
        (example,) = clustering_report(gold, pred, n_examples=1, seed=seed).error_examples
        key = (example["position_a"], example["position_b"])
        counts[key] = counts.get(key, 0) + 1
    expected_pairs = {(u, v) for u, v in combinations(range(6), 2) if gold[u] == gold[v] and pred[u] != pred[v]}
    assert set(counts) == expected_pairs
    assert all(55 <= c <= 145 for c in counts.values()), counts  # 100 expected each, sd 9: a 5-sigma margin


def test_counts_missing_and_dict_keys():
    messages = [Message(0, i, "customer" if i % 2 == 0 else "assistant", f"text {i}", intent)
                for i, intent in enumerate(["greet", "ask", "ask", "bye"])]
    dataset = Dataset([Conversation(0, tuple(messages))])
    labels = {(0, 0): "hello", (0, 1): "question", (0, 2): "question"}
    report = evaluate_labels(dataset, labels, missing="singleton")
    assert report.n_missing == 1 and report.n_messages == 4 and report.coverage == 0.75
    assert report.n_pred_intents == 2  # named predicted intents; the missing message is a singleton cluster
    assert report.pred_counts == {"question": 2, "hello": 1}
    assert report.gold_counts == {"ask": 2, "bye": 1, "greet": 1}
    assert report.purity == 1.0
    assert set(report.to_dict()) == set(REPORT_KEYS)
    assert report.objective("purity") == report.purity and report.objective() == report.AMI_x_NCA
    with pytest.raises(KeyError):
        report.objective("nonsense")
    same_as_unique = clustering_report(["greet", "ask", "ask", "bye"], ["hello", "question", "question", "lonely"])
    assert report.AMI == pytest.approx(same_as_unique.AMI)
    text = format_report(report)
    assert "AMI" in text and "n_missing" in text


def test_large_report_is_consistent_with_sklearn():
    """A 20k-message, ~400-intent report (the grouped expected-MI path with many distinct sizes)."""
    from igft.synthetic import synthetic_dataset

    dataset = synthetic_dataset(20000, 400, seed=5)
    gold = [m.intent for m in dataset.messages]
    rng = np.random.default_rng(0)
    pred = [g if rng.random() < 0.6 else f"noise_{rng.integers(0, 500)}" for g in gold]
    report = clustering_report(gold, pred)
    assert report.AMI == pytest.approx(skm.adjusted_mutual_info_score(gold, pred), abs=1e-9)
    assert report.ARI == pytest.approx(skm.adjusted_rand_score(gold, pred), abs=1e-12)
