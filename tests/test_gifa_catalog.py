"""Intent catalog and the retrieval index: exact top-k against brute force, incremental growth, snapshots."""
import numpy as np
import pytest

from igft.gifa.catalog import IntentCatalog, RetrievalIndex
from igft.labeling import CATALOG_COLUMNS


def _unit_rows(rng, n, d):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute_force(all_emb, labeled_rows, query_rows, top_k):
    """Reference: score every labeled message one by one, sort by (-score, labeled order)."""
    out = []
    for q in query_rows:
        scored = [(-float(np.dot(all_emb[q], all_emb[r])), pos) for pos, r in enumerate(labeled_rows)]
        out.append([pos for _, pos in sorted(scored)[:top_k]])
    return out


@pytest.mark.parametrize("top_k", [1, 3, 10, 50])
def test_neighbours_match_brute_force(top_k):
    rng = np.random.default_rng(top_k)
    emb = _unit_rows(rng, 60, 16)
    keys = [(i // 6, i % 6) for i in range(60)]
    index = RetrievalIndex(emb, keys)
    order = list(rng.permutation(48))
    intents = [f"intent_{r % 7}" for r in order]
    index.add([keys[r] for r in order], intents)
    queries = list(range(48, 60))
    got = index.neighbours([keys[q] for q in queries], top_k)
    assert got == _brute_force(emb, order, queries, top_k)
    # known_intents: the distinct intents of those neighbours, ordered by their best similarity
    expected_scores = {}
    for qi, q in enumerate(queries):
        for pos in got[qi]:
            s = float(np.dot(emb[q], emb[order[pos]]))
            name = intents[pos]
            if name not in expected_scores or (-s, pos) < (-expected_scores[name][0], expected_scores[name][1]):
                expected_scores[name] = (s, pos)
    expected = sorted(expected_scores, key=lambda n: (-expected_scores[n][0], expected_scores[n][1]))
    assert index.known_intents([keys[q] for q in queries], top_k) == expected


def test_ties_go_to_the_earlier_labeled_message():
    emb = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    keys = [(0, 0), (0, 1), (0, 2), (1, 0)]
    index = RetrievalIndex(emb, keys)
    index.add([(0, 2), (0, 0), (0, 1)], ["c", "a", "b"])
    assert index.neighbours([(1, 0)], 2) == [[0, 1]]  # all scores 0: first labeled first
    assert index.known_intents([(1, 0)], 2) == ["c", "a"]


def test_only_labeled_messages_are_retrieved_and_index_grows_without_rebuild():
    rng = np.random.default_rng(0)
    emb = _unit_rows(rng, 30, 8)
    keys = [(i // 10, i % 10) for i in range(30)]
    index = RetrievalIndex(emb, keys)
    assert index.known_intents(keys[:10], 5) == []  # nothing labeled yet
    buffer = index._labeled
    index.add(keys[:10], ["a"] * 10)
    index.add(keys[10:20], ["b"] * 10)
    assert index._labeled is buffer  # rows appended into the preallocated block, nothing rebuilt
    assert index.n_labeled == 20
    # Incremental == built at once
    fresh = RetrievalIndex(emb, keys)
    fresh.add(keys[:20], ["a"] * 10 + ["b"] * 10)
    assert index.neighbours(keys[20:], 4) == fresh.neighbours(keys[20:], 4)
    # A conversation's own messages are never its neighbours (they are not labeled yet).
    assert all(r < 20 for rows in index.neighbours(keys[20:], 25) for r in rows)
    # Snapshot: upto=10 sees only the first conversation's labels.
    assert set(index.known_intents(keys[20:], 5, upto=10)) == {"a"}
    with pytest.raises(ValueError):
        index.add(keys[:1], ["again"])


def test_one_matrix_product_per_query(monkeypatch):
    """known_intents for a conversation scores all its messages against the labeled block at once."""
    rng = np.random.default_rng(1)
    emb = _unit_rows(rng, 20, 8)
    keys = list(range(20))
    index = RetrievalIndex(emb, keys)
    index.add(keys[:15], [f"i{k % 4}" for k in range(15)])
    calls = []
    original = index.rows

    def counting_rows(ks):
        calls.append(list(ks))
        return original(ks)

    monkeypatch.setattr(index, "rows", counting_rows)
    index.known_intents(keys[15:], 3)
    assert calls == [keys[15:]]


def test_catalog_order_counts_examples_descriptions():
    catalog = IntentCatalog(max_examples=2)
    assert catalog.add("greet", "hi") is True
    assert catalog.add("ask_order", "where is it") is True
    assert catalog.add("greet", "hello") is False
    catalog.add("greet", "hey")
    catalog.set_description("greet", "opens the conversation")
    catalog.set_description("greet", "a later description is ignored")
    catalog.set_description("unknown", "ignored")
    frame = catalog.to_frame()
    assert list(frame.columns) == CATALOG_COLUMNS
    assert frame["intent"].tolist() == ["greet", "ask_order"]
    assert frame["count"].tolist() == [3, 1]
    assert frame["examples"].tolist()[0] == ["hi", "hello"]
    assert frame["description"].tolist() == ["opens the conversation", ""]
    assert "greet" in catalog and len(catalog) == 2


def _clustered_rows(rng, n, dim, centres=40):
    """Unit rows around a few centres, like embeddings of recurring support messages."""
    centre = rng.standard_normal((centres, dim)).astype(np.float32)
    rows = centre[rng.integers(0, centres, n)] + 0.3 * rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_ivf_above_the_threshold_agrees_with_exact_search_and_is_deterministic():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(3)
    emb = _clustered_rows(rng, 3000, 16)
    keys = list(range(3000))
    intents = [f"i{k % 50}" for k in keys]

    def built(threshold, seed=0):
        index = RetrievalIndex(emb, keys, ann_threshold=threshold, seed=seed)
        for start in range(0, 2800, 10):  # one conversation of 10 messages at a time
            index.add(keys[start:start + 10], intents[start:start + 10])
        return index

    exact, approx = built(None), built(500)
    assert approx.uses_ann and not exact.uses_ann
    # Built at 510 labeled rows, retrained on all rows once 4x that were labeled: both kept the rows in order.
    assert approx._ann.rebuilds == 1 and len(approx._ann) == 2800
    queries = keys[2800:]
    got, want = approx.neighbours(queries, 5), exact.neighbours(queries, 5)
    recall = np.mean([len(set(g) & set(w)) / 5 for g, w in zip(got, want)])
    assert recall >= 0.95
    # Candidates are re-scored exactly: where the neighbours agree, so does the order (ties included).
    assert sum(g == w for g, w in zip(got, want)) >= 0.9 * len(queries)
    assert built(500).neighbours(queries, 5) == got  # same seed and insertion order: same answers
    # Below the threshold the index is exact.
    small, reference = RetrievalIndex(emb, keys, ann_threshold=2000), RetrievalIndex(emb, keys, ann_threshold=None)
    for index in (small, reference):
        index.add(keys[:1500], intents[:1500])
    assert not small.uses_ann and small.neighbours(queries, 5) == reference.neighbours(queries, 5)


def test_labels_on_toy_data_are_identical_with_ivf_and_exact_search():
    pytest.importorskip("faiss")
    from igft.data import load_conversations
    from igft.gifa import GifaConfig, label_dataset
    from igft.llm.base import HashingEmbedder, ScriptedLM
    from igft.llm.loopback_server import labeling_answer
    from igft.resources import toy_conversations_path

    toy = load_conversations(toy_conversations_path())
    answer = lambda request: labeling_answer(request.messages[-1]["content"])  # noqa: E731
    exact = label_dataset(toy, ScriptedLM(answer), HashingEmbedder(), GifaConfig(ann_threshold=None), progress=False)
    lm = ScriptedLM(answer)
    approx = label_dataset(toy, lm, HashingEmbedder(), GifaConfig(ann_threshold=20), progress=False)
    assert approx.labels == exact.labels and approx.failures == []
    assert len({r.messages[-1]["content"] for r in lm.requests}) == len(toy)
