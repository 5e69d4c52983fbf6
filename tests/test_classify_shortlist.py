"""The prompt baseline's retrieval shortlist: the prompt lists only the N nearest labels, the answer is
parsed against them, the shortlist's recall is measured, and the centroids survive save / load."""
from __future__ import annotations

import pytest

from igft.classify.base import ClassifierError, build_classifier, load_classifier, save_classifier
from igft.classify.shortlist import LabelShortlist
from igft.classify.task import load_task
from igft.llm.base import HashingEmbedder, ScriptedLM
from igft.resources import dummy_data_dir

TOY = dummy_data_dir() / "classify"


def test_shortlist_ranks_the_label_of_a_training_text_first():
    texts = ["refund my card please", "refund the charge", "book a table tonight", "table for two tonight"]
    labels = ["refund", "refund", "booking", "booking"]
    short = LabelShortlist(HashingEmbedder(), ["refund", "booking", "weather"]).fit(texts, labels)
    assert short.top(["refund my charge"], 1) == [["refund"]]
    assert short.top(["a table tonight"], 2)[0][0] == "booking"
    assert len(short.top(["anything"], 3)[0]) == 3
    assert short.recall(["refund my charge", "a table tonight"], ["refund", "booking"], 1) == 1.0
    assert short.recall(["refund my charge"], ["booking"], 1) == 0.0  # gold outside the shortlist: a miss


def test_prompt_classifier_lists_only_the_shortlist(tmp_path):
    task = load_task(TOY / "hospitality_requests.csv")
    train = task.split()["train"]
    texts, targets = task.texts(train), task.targets(train)
    labels = task.fields[0].labels
    assert len(labels) > 3

    def reply(request):  # answer with the first label the prompt offers
        system = request.messages[0]["content"]
        offered = [line[2:] for line in system.splitlines() if line.startswith("- ")]
        assert len(offered) == 3  # the shortlist, not the whole taxonomy
        return '{"intent": "%s"}' % offered[0]

    clf = build_classifier("prompt", task.schema, {"lm": "scripted", "shortlist": 3, "shortlist_embedder": "hashing"})
    clf._lm = ScriptedLM(reply)
    clf.fit(texts, targets)
    preds = clf.predict(texts[:6])
    nearest = [short[0] for short in clf.shortlister.top(texts[:6], 3)]
    assert [p["intent"] for p in preds] == nearest and clf.unparsed == 0
    recall = clf.shortlister.recall(texts, [t["intent"] for t in targets], 3)
    assert 0.0 <= recall <= 1.0
    save_classifier(clf, tmp_path / "m")
    again = load_classifier(tmp_path / "m")
    again._lm = ScriptedLM(reply)
    assert again.predict(texts[:6]) == preds


def test_shortlist_needs_one_field():
    task = load_task(TOY / "german_tickets.csv")
    with pytest.raises(ClassifierError, match="one-field"):
        build_classifier("prompt", task.schema, {"shortlist": 3})
