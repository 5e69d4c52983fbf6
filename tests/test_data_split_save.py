"""Splits by conversation (sequential and seeded), saving labeled output, and the toy data's shape."""
import re
from collections import Counter

import pytest

from igft.data import load_conversations, save_labeled
from igft.resources import toy_conversations_path
from igft.synthetic import synthetic_dataset


@pytest.fixture(scope="module")
def dataset():
    return synthetic_dataset(600, 30, seed=3)


def test_sequential_split_keeps_order_and_partitions(dataset):
    parts = dataset.split((0.6, 0.2, 0.2), shuffle=False)
    assert [len(p) for p in parts] == [round(0.6 * len(dataset)), round(0.8 * len(dataset)) - round(0.6 * len(dataset)),
                                       len(dataset) - round(0.8 * len(dataset))]
    assert sum((p.numbers for p in parts), []) == dataset.numbers


def test_random_split_is_seeded_and_never_cuts_a_conversation(dataset):
    a_train, a_test = dataset.split((0.8, 0.2), seed=11)
    b_train, b_test = dataset.split((0.8, 0.2), seed=11)
    c_train, _ = dataset.split((0.8, 0.2), seed=12)
    assert a_train.numbers == b_train.numbers and a_test.numbers == b_test.numbers
    assert a_train.numbers != c_train.numbers
    assert sorted(a_train.numbers + a_test.numbers) == sorted(dataset.numbers)
    assert not set(a_train.numbers) & set(a_test.numbers)
    assert a_train.n_messages + a_test.n_messages == dataset.n_messages
    whole = {c.number: c for c in dataset.conversations}
    assert all(c == whole[c.number] for c in a_test.conversations)  # conversations arrive whole


def test_bad_fractions_are_refused(dataset):
    with pytest.raises(ValueError, match="sum to 1"):
        dataset.split((0.5, 0.4))


def test_save_labeled_round_trips_csv_and_jsonl(dataset, tmp_path):
    labels = {m.key: f"pred_{m.intent}" for m in dataset.messages}
    for name in ("labeled.csv", "labeled.jsonl"):
        path = save_labeled(dataset, labels, tmp_path / name)
        back = load_conversations(path)
        assert back.numbers == dataset.numbers
        assert [(m.key, m.role, m.text, m.intent) for m in back.messages] == \
               [(m.key, m.role, m.text, labels[m.key]) for m in dataset.messages]
    assert not list(tmp_path.glob("*.tmp"))


def test_toy_data_shape():
    toy = load_conversations(toy_conversations_path())
    assert len(toy) >= 25 and toy.has_gold
    assert all(6 <= len(c) <= 12 and {m.role for m in c.messages} == {"customer", "assistant"} for c in toy)
    counts = Counter(m.intent for m in toy.messages)
    assert 40 <= len(counts) <= 80
    assert all(re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", name) for name in counts)
    recurring = [name for name, n in counts.items() if n >= 5]
    assert {"thank_you", "goodbye"} <= set(recurring) and len(recurring) >= 10
    spread = Counter(name for c in toy for name in {m.intent for m in c.messages})
    assert spread["goodbye"] >= len(toy) // 2  # frequent intents recur across conversations
    texts = [m.text for m in toy.messages]
    assert len(set(texts)) > 0.9 * len(texts)
