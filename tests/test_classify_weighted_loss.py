"""Class-weighted cross-entropy of the classification head against a hand computation; prompt baseline parsing."""
from __future__ import annotations

import json
import math

import pytest
import torch

from igft.classify.baselines import PromptClassifier, PromptConfig
from igft.classify.head import HeadClassifier, HeadConfig, balanced_class_weights, weighted_cross_entropy
from igft.classify.task import FieldSpec, TaskSchema
from igft.llm.base import ScriptedLM


def hand_weighted_ce(logits: list[list[float]], targets: list[int], weights: list[float]) -> float:
    num = den = 0.0
    for row, y in zip(logits, targets):
        log_z = math.log(sum(math.exp(v) for v in row))
        num += weights[y] * -(row[y] - log_z)
        den += weights[y]
    return num / den


def test_balanced_weights_are_inverse_frequencies():
    # N = 5, K = 3: a appears 3 times, b once, c once  ->  5/(3*3), 5/3, 5/3
    weights = balanced_class_weights(["a", "a", "a", "b", "c"], ["a", "b", "c"])
    assert weights == pytest.approx([5 / 9, 5 / 3, 5 / 3])
    # a label absent from training counts as one row, never divides by zero
    assert balanced_class_weights(["a", "a"], ["a", "b"]) == pytest.approx([0.5, 1.0])


def test_weighted_cross_entropy_matches_hand_computation():
    logits = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.5, 1.5, 0.0], [1.0, 1.0, 3.0]]
    targets = [0, 2, 1, 0]
    weights = [0.25, 2.0, 1.5]
    got = weighted_cross_entropy(torch.tensor(logits), torch.tensor(targets), torch.tensor(weights))
    assert float(got) == pytest.approx(hand_weighted_ce(logits, targets, weights), rel=1e-6)
    # the weights change the loss: the unweighted mean differs here
    plain = weighted_cross_entropy(torch.tensor(logits), torch.tensor(targets))
    assert float(plain) == pytest.approx(hand_weighted_ce(logits, targets, [1.0, 1.0, 1.0]), rel=1e-6)
    assert abs(float(plain) - float(got)) > 1e-3


def test_multi_field_head_loss_sums_weighted_slices():
    schema = TaskSchema(fields=[FieldSpec("a", ["x", "y"]), FieldSpec("b", ["p", "q", "r"])])
    head = HeadClassifier(schema, HeadConfig())
    head.field_weights = {"a": [1.0, 3.0], "b": [0.5, 1.0, 2.0]}
    logits = [[0.3, -0.2, 1.0, 0.0, -1.0], [1.2, 0.4, -0.3, 0.8, 0.1], [0.0, 2.0, 0.2, 0.2, 0.9]]
    targets = [[1, 0], [0, 2], [1, 1]]
    got = head.loss(torch.tensor(logits), torch.tensor(targets))
    expected = (hand_weighted_ce([r[:2] for r in logits], [t[0] for t in targets], [1.0, 3.0])
                + hand_weighted_ce([r[2:] for r in logits], [t[1] for t in targets], [0.5, 1.0, 2.0]))
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_given_weights_must_cover_every_label():
    schema = TaskSchema(fields=[FieldSpec("label", ["no", "yes"])])
    head = HeadClassifier(schema, HeadConfig(weights={"no": 1.0, "yes": 4.0}))
    assert head._weights_for(schema.fields[0], ["no", "no", "yes"]) == [1.0, 4.0]
    bad = HeadClassifier(schema, HeadConfig(weights={"no": 1.0}))
    with pytest.raises(Exception, match="miss label"):
        bad._weights_for(schema.fields[0], ["no"])


SCHEMA = TaskSchema(fields=[FieldSpec("intent", ["late_checkout", "room_change", "wifi_issue"])])


def test_prompt_baseline_parses_answers_and_counts_failures():
    replies = ['{"intent": "room_change"}', "I think it is wifi issue.", "no clue", '{"intent": "late_checkout"}']
    lm = ScriptedLM(replies)
    clf = PromptClassifier(SCHEMA, PromptConfig(shots=2), lm=lm)
    train_texts = ["stay until 2?", "move us", "no internet", "other room please"]
    train_targets = [{"intent": i} for i in ["late_checkout", "room_change", "wifi_issue", "room_change"]]
    clf.fit(train_texts, train_targets)
    preds = clf.predict(["a", "b", "c", "d"])
    assert [p["intent"] for p in preds] == ["room_change", "wifi_issue", "room_change", "late_checkout"]
    assert clf.unparsed == 1 and clf.non_json == 2  # "no clue" fell back to the most frequent training label
    messages = lm.requests[0].messages
    assert messages[0]["role"] == "system" and "- wifi_issue" in messages[0]["content"]
    assert [m["role"] for m in messages[1:]] == ["user", "assistant", "user", "assistant", "user"]
    assert {json.loads(m["content"])["intent"] for m in messages[1:5] if m["role"] == "assistant"} <= set(SCHEMA.fields[0].labels)


def test_prompt_baseline_replays_from_a_cassette(tmp_path):
    from igft.llm.cassette import CassetteLM

    cassette = tmp_path / "prompt.jsonl"
    recorder = CassetteLM(ScriptedLM(lambda r: '{"intent": "wifi_issue"}'), cassette, "record", model="scripted")
    PromptClassifier(SCHEMA, PromptConfig(), lm=recorder).predict(["the wifi is down"])
    replay = PromptClassifier(SCHEMA, PromptConfig(lm="scripted", mode="replay", cassette=str(cassette)))
    assert replay.predict(["the wifi is down"]) == [{"intent": "wifi_issue"}]
    with pytest.raises(Exception, match="--mode record|record"):
        PromptClassifier(SCHEMA, PromptConfig(lm="scripted", mode="replay", cassette=str(cassette))).predict(["unseen text"])
