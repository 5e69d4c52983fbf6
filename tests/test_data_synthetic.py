"""The seeded synthetic generator: exact sizes, determinism, Zipf-like frequencies, recoverable intents."""
from collections import Counter

import numpy as np
import pytest

from igft.data import load_conversations
from igft.synthetic import synthetic_dataset


@pytest.mark.parametrize("n", [6, 7, 12, 13, 17, 25, 1000, 1003])
def test_exact_size_and_conversation_shape(n):
    data = synthetic_dataset(n, 20, seed=n)
    assert data.n_messages == n
    for conversation in data:
        assert 6 <= len(conversation) <= 12
        assert {m.role for m in conversation.messages} == {"customer", "assistant"}
        assert [m.index for m in conversation.messages] == list(range(len(conversation)))
        assert conversation.messages[0].role == "customer"


def test_determinism_and_seed_sensitivity():
    a, b, c = (synthetic_dataset(1500, 60, seed=s) for s in (4, 4, 5))
    rows = lambda d: [(m.key, m.role, m.text, m.intent) for m in d.messages]  # noqa: E731
    assert rows(a) == rows(b)
    assert rows(a) != rows(c)


def test_zipf_like_frequencies_and_vocabulary():
    data = synthetic_dataset(20000, 200, seed=0)
    counts = Counter(m.intent for m in data.messages)
    assert 150 <= len(counts) <= 200
    domain = sorted((n for name, n in counts.items() if name not in {"greeting", "thank_you", "goodbye"}), reverse=True)
    assert domain[0] > 10 * domain[len(domain) // 2]  # a long tail: head intents dwarf the median
    assert data.has_gold
    roles = {}
    for m in data.messages:
        roles.setdefault(m.intent, set()).add(m.role)
    assert sum(len(r) == 1 for r in roles.values()) >= len(roles) - 3  # domain intents belong to one role


def test_messages_of_an_intent_are_similar_but_not_identical():
    from sklearn.feature_extraction.text import TfidfVectorizer

    data = synthetic_dataset(2000, 40, seed=1)
    texts = [m.text for m in data.messages]
    intents = np.array([m.intent for m in data.messages])
    by_intent = Counter(intents)
    frequent = [name for name, n in by_intent.items() if n >= 20 and name not in {"greeting", "thank_you", "goodbye"}]
    for name in frequent:
        distinct = {t for t, i in zip(texts, intents) if i == name}
        assert len(distinct) >= 5, name
    vectors = TfidfVectorizer().fit_transform(texts)
    similarity = (vectors @ vectors.T).toarray()
    np.fill_diagonal(similarity, -1)
    nearest = similarity.argmax(axis=1)
    agreement = float(np.mean(intents[nearest] == intents))
    assert agreement > 0.8, agreement  # nearest neighbour shares the intent: embeddings can recover them


def test_round_trips_through_the_validator(tmp_path):
    data = synthetic_dataset(500, 50, seed=2)
    back = load_conversations(data.save(tmp_path / "synthetic.csv"))
    assert [(m.key, m.text, m.intent) for m in back.messages] == [(m.key, m.text, m.intent) for m in data.messages]


def test_bad_arguments():
    with pytest.raises(ValueError):
        synthetic_dataset(5, 10)
    with pytest.raises(ValueError):
        synthetic_dataset(100, 10**6)
