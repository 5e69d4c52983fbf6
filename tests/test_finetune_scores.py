"""Parsing of generated outputs and every reply / intent score on hand-made pairs with known values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from igft.finetune.parsing import normalize_intent, parse_intent_response, parse_output, strip_think
from igft.finetune.scores import (bertscore_f1, bleu, embedding_cosine, intent_scores, meteor, meteor_available,
                                  rouge, score_predictions)


def test_well_formed_output_parses_into_intents_and_reply():
    p = parse_intent_response("Intents:\n- request_refund\n- Apologize\nResponses:\nSorry! Refund issued.\nBye.")
    assert p.intents == ["request_refund", "apologize"]
    assert p.reply == "Sorry! Refund issued.\nBye."
    assert not p.malformed and p.reasons == []


def test_think_blocks_are_stripped_before_parsing():
    assert strip_think("<think>plan it</think>Hello") == "Hello"
    assert strip_think("Hi<think>unfinished thoughts") == "Hi"
    p = parse_intent_response("<think>the user wants a refund</think>\nIntents:\n- refund\nResponses:\nDone.")
    assert p.intents == ["refund"] and p.reply == "Done." and not p.malformed


@pytest.mark.parametrize("text, intents, reply, reasons", [
    ("Sure, I can help.", [], "Sure, I can help.", ["no 'Intents:' header", "no 'Responses:' header"]),
    ("Intents:\n- greet\nHello there!", ["greet"], "Hello there!", ["no 'Responses:' header"]),
    ("Intents:\nResponses:\nHello!", [], "Hello!", ["empty intent list"]),
    ("Intents:\n- greet\nResponses:\n", ["greet"], "", ["empty reply"]),
    ("Intent: greet, offer help\nResponse: Hi!", ["greet", "offer_help"], "Hi!", []),
    ("Intents:\n- bye\nResponses:\nBye.\nIntents:\n- bye\nResponses:\nBye.", ["bye"], "Bye.",
     ["another 'Intents:' block after the reply"]),
    ("Intents:\n1. Track Order.\n2) track order\nResponses:\nIt ships today.", ["track_order"], "It ships today.", []),
])
def test_malformed_or_variant_outputs_are_flagged_not_raised(text, intents, reply, reasons):
    p = parse_intent_response(text)
    assert p.intents == intents and p.reply == reply and p.reasons == reasons and p.malformed == bool(reasons)


def test_response_format_outputs_only_lose_think_blocks():
    assert parse_output("<think>x</think> Hi", "response").reply == "Hi"
    assert parse_output("", "response").malformed
    assert normalize_intent("- Request Refund.") == "request_refund"


def test_bleu_known_values():
    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    assert bleu(["completely different words here"], ["the cat sat on the mat"]) == pytest.approx(0.0)
    # hypothesis "the cat sat on mat today" (6 tokens) vs reference "the cat sat on mat" (5): brevity penalty 1;
    # n-gram precisions 5/6, 4/5, 3/4, 2/3.
    expected = 100 * math.exp(np.mean(np.log([5 / 6, 4 / 5, 3 / 4, 2 / 3])))
    assert bleu(["the cat sat on mat today"], ["the cat sat on mat"]) == pytest.approx(expected, rel=1e-6)


def test_rouge_known_values():
    r = rouge(["the cat sat"], ["the cat sat on the mat"])
    # unigrams: overlap 3, P=3/3, R=3/6 -> F=2/3; bigrams: overlap 2, P=2/2, R=2/5 -> F=4/7; LCS 3 -> 2/3.
    assert r["rouge1"] == pytest.approx(2 / 3) and r["rouge2"] == pytest.approx(4 / 7) and r["rougeL"] == pytest.approx(2 / 3)
    assert rouge(["a b"], ["c d"]) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    both = rouge(["the cat sat", "x"], ["the cat sat on the mat", "x"])
    assert both["rouge1"] == pytest.approx((2 / 3 + 1) / 2)  # mean over pairs


def test_meteor_is_reported_unavailable_without_wordnet_or_scores_identity():
    value = meteor(["the cat sat on the mat"], ["the cat sat on the mat"])
    if meteor_available():
        assert value == pytest.approx(0.9977, abs=1e-3)  # METEOR's fragmentation penalty keeps identity below 1
    else:
        assert value is None
        out = score_predictions([{"reply": "a", "reference": "a"}], bertscore=False, cosine=False)
        assert out["meteor"] is None and "wordnet" in out["meteor_unavailable"]


def test_intent_scores_known_values():
    pred = [["a", "b"], ["c"], [], ["d"]]
    gold = [["a"], ["c", "e"], ["f"], ["d"]]
    s = intent_scores(pred, gold)
    # tp = a, c, d = 3; fp = b = 1; fn = e, f = 2
    assert s["intent_precision"] == pytest.approx(3 / 4)
    assert s["intent_recall"] == pytest.approx(3 / 5)
    assert s["intent_f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert s["intent_exact_match"] == pytest.approx(1 / 4)
    assert s["intent_macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0 + 1) / 4)


def test_embedding_cosine_with_a_known_embedder():
    class Fixed:
        model = "fixed"
        vectors = {"x": [1.0, 0.0], "y": [0.0, 1.0], "z": [1.0, 1.0]}

        def embed(self, texts):
            return np.array([self.vectors[t] for t in texts], dtype=np.float32)

    assert embedding_cosine(["x", "x"], ["x", "z"], Fixed()) == pytest.approx((1 + 1 / math.sqrt(2)) / 2)
    assert embedding_cosine(["x"], ["y"], Fixed()) == pytest.approx(0.0)


@pytest.mark.slow
def test_bertscore_and_cosine_with_the_bundled_minilm():
    same = bertscore_f1(["the parcel arrives tomorrow"], ["the parcel arrives tomorrow"])
    assert same == pytest.approx(1.0, abs=1e-4)
    close = bertscore_f1(["the parcel arrives tomorrow"], ["your package will arrive tomorrow"])
    far = bertscore_f1(["the parcel arrives tomorrow"], ["quantum chromodynamics lecture notes"])
    assert 0 < far < close < same
    # An empty reply scores 0 for its pair (and does not crash bert_score).
    assert bertscore_f1(["", "the parcel arrives tomorrow"], ["x", "the parcel arrives tomorrow"]) == pytest.approx(0.5, abs=1e-4)
    assert embedding_cosine(["refund my order"], ["refund my order"]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_score_predictions_reports_every_key_for_intent_response():
    records = [{"format": "intent+response", "reply": "Refund issued.", "reference": "Refund issued.",
                "intents": ["issue_refund"], "gold_intents": ["issue_refund"], "malformed": False},
               {"format": "intent+response", "reply": "Hello", "reference": "Goodbye and thanks",
                "intents": [], "gold_intents": ["close"], "malformed": True}]
    s = score_predictions(records)
    for key in ("bleu", "rouge1", "rouge2", "rougeL", "meteor", "bertscore_f1", "embedding_cosine", "intent_f1",
                "intent_precision", "intent_recall", "intent_exact_match"):
        assert key in s
    assert s["n_malformed"] == 1 and s["intent_precision"] == 1.0 and s["intent_recall"] == 0.5
    assert s["intent_exact_match"] == 0.5
    # Raw outputs are re-parsed at scoring time (the stored reply of an older parser is ignored).
    rescored = score_predictions([{**records[0], "output": "Intents:\n- x\nResponses:\nRefund issued.", "reply": "stale"}],
                                 bertscore=False, cosine=False)
    assert rescored["intent_precision"] == 0.0 and rescored["rougeL"] == pytest.approx(1.0)
